using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Ferry.Tests.Shared;

/// <summary>
/// A real PostgreSQL 15 server for tests: started once per test process in a temp dir <c>/tmp/ferry-pg-*</c>
/// (run as the <c>postgres</c> user, since initdb refuses root), on a free loopback port, with fsync off. Each
/// test class asks for its own database with <see cref="CreateDatabase"/>. Test classes that use it join the
/// <see cref="Collection"/> collection, whose fixture stops the server and removes its dir when they are done,
/// pass or fail (the test host raises no exit event to do it later); a dir left by a killed run (its owner
/// process gone) is removed by the next start.
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
        if (!IsInstalled)
        {
            throw new InvalidOperationException($"PostgreSQL 15 is not installed ({BinDirectory}/pg_ctl missing): install the Debian package 'postgresql'.");
        }
        RemoveLeftovers();
        var root = Path.Combine(Path.GetTempPath(), "ferry-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        // The server `ferry distributed` runs, without durability: nothing a test writes is kept.
        var server = Ferry.Host.Distributed.LocalPostgres.Start(root, port: 0, durable: false);
        return new PostgresServer(root, server.Port);
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
        // Kill the postmaster and its children outright (an immediate stop without the wait: nothing here is
        // kept), so the stop fits in the little time a test process gets at exit.
        var pidFile = Path.Combine(root, "data", "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), CultureInfo.InvariantCulture, out var pid))
        {
            try
            {
                using var postmaster = Process.GetProcessById(pid);
                if (postmaster.ProcessName is "postgres" or "postmaster")
                {
                    postmaster.Kill(entireProcessTree: true);
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
