using System.Buffers.Binary;
using System.Text;

namespace Ferry.FunctionalTests.Distributed;

/// <summary>The header type and section names of a 64-bit little-endian ELF file (the native ferry), read from its headers.</summary>
public sealed record ElfFile(ushort Type, IReadOnlyList<string> SectionNames)
{
    /// <summary>ET_EXEC: an executable linked at a fixed address (not position independent).</summary>
    public const ushort Executable = 2;

    public static ElfFile Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F' || bytes[4] != 2 || bytes[5] != 1)
        {
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        }
        var span = bytes.AsSpan();
        var type = BinaryPrimitives.ReadUInt16LittleEndian(span[16..]);
        var sectionOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[40..]));
        var sectionSize = BinaryPrimitives.ReadUInt16LittleEndian(span[58..]);
        var sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[60..]);
        var namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(span[62..]);
        var namesOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(span[(sectionOffset + namesIndex * sectionSize + 24)..]));
        var names = new List<string>(sectionCount);
        for (var i = 0; i < sectionCount; i++)
        {
            var nameOffset = namesOffset + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(sectionOffset + i * sectionSize)..]);
            var end = span[nameOffset..].IndexOf((byte)0);
            names.Add(Encoding.ASCII.GetString(span.Slice(nameOffset, end)));
        }
        return new ElfFile(type, names);
    }
}
