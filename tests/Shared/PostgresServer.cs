using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Ferry.Tests.Shared;

/// <summary>
/// A real PostgreSQL 15 server for tests: started once per test process in a temp dir <c>/tmp/ferry-pg-*</c>
/// (run as the <c>postgres</c> user, since initdb refuses root), on a free loopback port, with fsync off. Each
/// test class asks for its own database with <see cref="CreateDatabase"/>. Test classes that use it join the
/// <see cref="Collection"/> collection, whose fixture stops the server and removes its dir when they are done,
/// pass or fail. Test classes outside the collection (the functional tests' PostgreSQL + RabbitMQ shape) are covered by
/// a watcher process started with the server: once the test process is gone, however it ended (a plain
/// <c>dotnet test</c> whose test host exits or is killed by the runner, a killed run), it stops the server and removes
/// its dir. A dir a watcher could not clean (the machine rebooted) is removed by the next start (its owner process gone).
/// </summary>
public sealed class PostgresServer
{
    /// <summary>The xunit collection of every test class that uses the server.</summary>
    public const string Collection = "postgres";

    private const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private const string OwnerFile = "owner.pid";
    private static readonly Lazy<PostgresServer> s_shared = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);
    private static int s_databases;

    private readonly string _root;

    private PostgresServer(string root, int port)
    {
        _root = root;
        Port = port;
    }

    /// <summary>The server of this test process, started on first use.</summary>
    public static PostgresServer Shared => s_shared.Value;

    /// <summary>True when the PostgreSQL 15 server binaries are installed (tests/debian-packages.txt lists <c>postgresql</c>).</summary>
    public static bool IsInstalled => File.Exists(Path.Combine(BinDirectory, "pg_ctl"));

    public int Port { get; }

    /// <summary>The connection string of the <c>postgres</c> maintenance database.</summary>
    public string AdminConnectionString => ConnectionString("postgres");

    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = "postgres", Database = database, Pooling = true, MaxPoolSize = 50 }.ConnectionString;

    /// <summary>Creates an empty database with a fresh name and returns its connection string.</summary>
    public string CreateDatabase(string prefix = "ferry")
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"{prefix.ToLowerInvariant()}_{Interlocked.Increment(ref s_databases)}_{Guid.NewGuid():N}");
        using var connection = new NpgsqlConnection(AdminConnectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"CREATE DATABASE \"{name}\"";
        command.ExecuteNonQuery();
        return ConnectionString(name);
    }

    private static PostgresServer Start()
    {
        var server = StartOwnedBy(Environment.ProcessId);
        // The quick way out of a test host that exits normally; the watcher covers one killed before or during this.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopShared();
        return server;
    }

    /// <summary>A server of its own that lives until process <paramref name="owner"/> ends (the shared one's owner is this process).</summary>
    internal static PostgresServer StartOwnedBy(int owner)
    {
        if (!IsInstalled)
        {
            throw new InvalidOperationException($"PostgreSQL 15 is not installed ({BinDirectory}/pg_ctl missing): install the Debian package 'postgresql'.");
        }
        RemoveLeftovers();
        var root = Path.Combine(Path.GetTempPath(), "ferry-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, OwnerFile), owner.ToString(CultureInfo.InvariantCulture));
        // The server `ferry distributed` runs, without durability: nothing a test writes is kept.
        var server = Ferry.Host.Distributed.LocalPostgres.Start(root, port: 0, durable: false);
        WatchOwner(root, owner);
        return new PostgresServer(root, server.Port);
    }

    /// <summary>The dir of this server (its data under <c>data/</c>).</summary>
    internal string Root => _root;

    /// <summary>
    /// Starts a process, in a session of its own so it outlives the test host and its process group, that waits for
    /// <paramref name="owner"/> to end, then stops the server of <paramref name="root"/> at once and removes the dir.
    /// An exit handler in the test host runs only when the host ends normally, not when it is killed (a killed run, or
    /// VSTest ending a host slow to exit); the watcher runs either way (<c>clean_test_servers</c> in the ferry script
    /// takes the same steps).
    /// </summary>
    private static void WatchOwner(string root, int owner)
    {
        const string Script = """
            exec </dev/null >/dev/null 2>&1
            tail --pid="$1" -f /dev/null
            if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$3" -D "$2/data" -m immediate -w -t 60 stop
            else "$3" -D "$2/data" -m immediate -w -t 60 stop; fi
            rm -rf "$2"
            """;
        var start = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { "sh", "-c", Script, "ferry-pg-watch", owner.ToString(CultureInfo.InvariantCulture), root, Path.Combine(BinDirectory, "pg_ctl") })
        {
            start.ArgumentList.Add(argument);
        }
        using var watcher = Process.Start(start) ?? throw new InvalidOperationException("could not start the PostgreSQL watcher (setsid sh)");
    }

    /// <summary>Stops the server of this process, if it was started, and removes its dir.</summary>
    public static void StopShared()
    {
        if (s_shared.IsValueCreated)
        {
            StopAndRemove(s_shared.Value._root);
        }
    }

    private static void StopAndRemove(string root)
    {
        // Kill the postmaster outright (an immediate stop without the wait: nothing here is kept), so the stop fits in the
        // little time a test process gets at exit; its children exit when they see it gone. Not Kill(entireProcessTree):
        // that stops (SIGSTOP) each process of the tree before it kills it, and a test process ended in between left a
        // stopped postgres behind for good (one each CI run).
        var pidFile = Path.Combine(root, "data", "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), CultureInfo.InvariantCulture, out var pid))
        {
            try
            {
                using var postmaster = Process.GetProcessById(pid);
                if (postmaster.ProcessName is "postgres" or "postmaster")
                {
                    postmaster.Kill();
                    postmaster.WaitForExit(TimeSpan.FromSeconds(10));
                }
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
            catch (InvalidOperationException)
            {
                // Exited while being killed.
            }
        }
        for (var attempt = 0; attempt < 50 && Directory.Exists(root); attempt++)
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A backend that outlived the postmaster for a moment may still write: try again.
                Thread.Sleep(100);
            }
        }
    }

    /// <summary>Servers of earlier runs whose test process is gone (killed before it could stop them).</summary>
    private static void RemoveLeftovers()
    {
        foreach (var root in Directory.GetDirectories(Path.GetTempPath(), "ferry-pg-*"))
        {
            var ownerFile = Path.Combine(root, OwnerFile);
            if (File.Exists(ownerFile) && int.TryParse(File.ReadAllText(ownerFile).Trim(), CultureInfo.InvariantCulture, out var owner) && IsAlive(owner))
            {
                continue;
            }
            if (!File.Exists(ownerFile) && Directory.GetLastWriteTimeUtc(root) > DateTime.UtcNow.AddMinutes(-1))
            {
                continue; // Another run is creating it right now.
            }
            StopAndRemove(root);
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>Stops <see cref="PostgresServer.Shared"/> when the last test of the collection is done.</summary>
public sealed class PostgresServerLifetime : IDisposable
{
    public void Dispose() => PostgresServer.StopShared();
}

[CollectionDefinition(PostgresServer.Collection)]
public sealed class PostgresServerCollection : ICollectionFixture<PostgresServerLifetime>;
