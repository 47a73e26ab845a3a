using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace Ferry.Virt.Fake;

/// <summary>
/// A guest table that writes every change through to one definition file per guest, as libvirt keeps a
/// domain's XML beside the running domain: a new process on the same instances path finds the guests, their
/// power state and the incoming side of a live migration again. Without a directory it is memory only.
/// </summary>
/// <remarks>
/// A change is applied in memory first, then the file is rewritten from whatever the table holds for the guest
/// by then (under one lock), so racing updates of one guest can never leave an older record on disk.
/// </remarks>
internal sealed class FakeGuestTable(string suffix)
{
    private readonly ConcurrentDictionary<string, FakeGuest> _guests = new(StringComparer.Ordinal);
    private readonly Lock _ioLock = new();
    private string? _directory;

    public ICollection<FakeGuest> Values => _guests.Values;

    public FakeGuest this[string uuid]
    {
        get => _guests[uuid];
        set
        {
            _guests[uuid] = value;
            Persist(uuid);
        }
    }

    public bool ContainsKey(string uuid) => _guests.ContainsKey(uuid);

    public bool TryGetValue(string uuid, [MaybeNullWhen(false)] out FakeGuest guest) => _guests.TryGetValue(uuid, out guest);

    public bool TryAdd(string uuid, FakeGuest guest)
    {
        if (!_guests.TryAdd(uuid, guest))
        {
            return false;
        }
        Persist(uuid);
        return true;
    }

    public bool TryRemove(string uuid, [MaybeNullWhen(false)] out FakeGuest guest)
    {
        if (!_guests.TryRemove(uuid, out guest))
        {
            return false;
        }
        Persist(uuid);
        return true;
    }

    public bool TryUpdate(string uuid, FakeGuest value, FakeGuest comparison)
    {
        if (!_guests.TryUpdate(uuid, value, comparison))
        {
            return false;
        }
        Persist(uuid);
        return true;
    }

    /// <summary>Writes through to <paramref name="directory"/> from now on, first loading the guests defined there.</summary>
    public void Attach(string directory)
    {
        lock (_ioLock)
        {
            Directory.CreateDirectory(directory);
            _directory = directory;
            foreach (var path in Directory.EnumerateFiles(directory, "*" + suffix))
            {
                var guest = Read(path);
                if (guest is not null && Path.GetFileName(path) == guest.Uuid + suffix)
                {
                    _guests.TryAdd(guest.Uuid, guest);
                }
            }
        }
    }

    private void Persist(string uuid)
    {
        lock (_ioLock)
        {
            if (_directory is null)
            {
                return;
            }
            var path = Path.Combine(_directory, uuid + suffix);
            if (!_guests.TryGetValue(uuid, out var guest))
            {
                File.Delete(path);
                return;
            }
            // Write then rename: a process killed mid-write leaves the previous definition, never half of one.
            var temporary = path + ".tmp";
            File.WriteAllBytes(temporary, JsonSerializer.SerializeToUtf8Bytes(guest, FakeJsonContext.Default.FakeGuest));
            File.Move(temporary, path, overwrite: true);
        }
    }

    private static FakeGuest? Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), FakeJsonContext.Default.FakeGuest);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
