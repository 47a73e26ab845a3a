using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Ferry.Host.Distributed;

/// <summary>
/// A PostgreSQL 15 server (Debian's <c>postgresql</c>) that Ferry runs for itself in one directory: created with
/// initdb on first use, listening on 127.0.0.1 only and on its socket in the directory (which Ferry's connections use),
/// and stopped with Ferry. PostgreSQL refuses to run as root, so as root the directory belongs to the <c>postgres</c>
/// user and every tool runs through <c>runuser</c>. A server a killed earlier run left running in the directory is
/// stopped first.
/// </summary>
public sealed class LocalPostgres
{
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private const string Database = "ferry";

    private LocalPostgres(string directory, int port)
    {
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }

    public int Port { get; }

    private string DataDirectory => Path.Combine(Directory, "data");

    /// <summary>The connection string of Ferry's database on this server.</summary>
    public string ConnectionString => ConnectionStringOf(Database);

    public static bool IsInstalled => File.Exists(Path.Combine(BinDirectory, "pg_ctl"));

    private static bool IsRoot => Environment.UserName == "root";

    // No GSS encryption on this loopback server: Npgsql's default (Prefer) looks for Kerberos credentials at every
    // connection, loading libgssapi_krb5 and libkrb5 into every process that opens the database (~1 MB each).
    // At most ConnectionsAProcess a process: with Npgsql's default of 100, six control-plane processes of a loaded
    // 10,000-host start grew their pools past max_connections ("53300: sorry, too many clients already"), and on 2 cores
    // a statement waiting for a pooled connection is no slower than one waiting for a CPU in its own backend.
    // Through the server's socket in its directory, not TCP on loopback: the same server, ~15 % cheaper a round trip on this
    // kind of machine (pgbench SELECT 1, 8 clients: 58-65k against 51-55k a second), and a 10,000-host control plane makes
    // hundreds of thousands of them. A directory whose socket path would not fit a socket address keeps TCP.
    public string ConnectionStringOf(string database) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = SocketFits ? Directory : "127.0.0.1", Port = Port, Username = "postgres", Database = database,
            GssEncryptionMode = GssEncryptionMode.Disable, MaxPoolSize = ConnectionsAProcess,
        }.ConnectionString;

    // sun_path holds 108 bytes with its terminating NUL.
    private bool SocketFits =>
        System.Text.Encoding.UTF8.GetByteCount(Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture, $".s.PGSQL.{Port}"))) < 108;

    /// <summary>
    /// The pool of each process (its history statements have up to 16 more): 3 replicas of api, conductor and scheduler
    /// take at most 9 × 66 of the server's <see cref="MaxConnections"/>.
    /// </summary>
    internal const int ConnectionsAProcess = 50;

    private const int MaxConnections = 800;

    /// <summary>
    /// Starts the server of <paramref name="directory"/> (created when new) on <paramref name="port"/> (0: a free one) and
    /// makes sure Ferry's database exists. <paramref name="durable"/> false turns fsync off (tests: nothing to keep).
    /// </summary>
    /// <exception cref="FerryStartException">PostgreSQL is missing, or the server would not start (its log's last lines quoted).</exception>
    public static LocalPostgres Start(string directory, int port, bool durable = true)
    {
        if (!IsInstalled)
        {
            throw new FerryStartException($"PostgreSQL 15 is not installed ({BinDirectory}/pg_ctl is missing): install the Debian package postgresql");
        }
        directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(directory);
        if (IsRoot)
        {
            // The postgres user must reach its directory: every parent needs search permission for others.
            Run("chown", "postgres:postgres", directory);
            if (!Succeeds("runuser", "-u", "postgres", "--", "test", "-w", directory))
            {
                throw new FerryStartException($"PostgreSQL runs as the postgres user, which cannot reach {directory}: give its parent directories o+x or choose another --data-dir");
            }
        }
        var server = new LocalPostgres(directory, port == 0 ? FreePort() : port);
        server.StopLeftover();
        if (!File.Exists(Path.Combine(server.DataDirectory, "PG_VERSION")))
        {
            server.Tool("initdb", "-D", server.DataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-instructions");
        }
        var settings = $"-p {server.Port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections={MaxConnections}" +
            (durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        var log = Path.Combine(directory, "server.log");
        try
        {
            server.Tool("pg_ctl", "-D", server.DataDirectory, "-l", log, "-w", "-t", "60", "-o", settings, "start");
        }
        catch (FerryStartException ex)
        {
            throw new FerryStartException($"{ex.Message}; last lines of {log}: {LastLines(log, 3)}");
        }
        server.EnsureDatabase(Database);
        return server;
    }

    /// <summary>Creates <paramref name="name"/> unless it exists; returns its connection string.</summary>
    public string EnsureDatabase(string name)
    {
        // Unpooled: after a restart of the server a pooled connection of this process would be a dead one.
        using var connection = new NpgsqlConnection(ConnectionStringOf("postgres") + ";Pooling=false");
        connection.Open();
        using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @n", connection);
        exists.Parameters.AddWithValue("n", name);
        if (exists.ExecuteScalar() is null)
        {
            using var create = new NpgsqlCommand($"CREATE DATABASE \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
            create.ExecuteNonQuery();
        }
        return ConnectionStringOf(name);
    }

    /// <summary>Stops the server: <paramref name="immediate"/> skips the checkpoint (tests, or a server that is thrown away).</summary>
    public void Stop(bool immediate = false)
    {
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            Succeeds(ToolCommand("pg_ctl", "-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "stop"));
        }
    }

    private void StopLeftover() => StopLeftover(Directory);

    /// <summary>The server a killed run left in <paramref name="directory"/>, if one still runs: stopped (before starting anew, or by a test's clean-up).</summary>
    public static void StopLeftover(string directory)
    {
        var data = Path.Combine(directory, "data");
        var pidFile = Path.Combine(data, "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), CultureInfo.InvariantCulture, out var pid)
            && System.IO.Directory.Exists($"/proc/{pid}"))
        {
            Succeeds(ToolCommand("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "60", "stop"));
        }
    }

    private void Tool(string tool, params string[] arguments) => Run(ToolCommand(tool, arguments));

    private static string[] ToolCommand(string tool, params string[] arguments) =>
        IsRoot ? ["runuser", "-u", "postgres", "--", Path.Combine(BinDirectory, tool), .. arguments] : [Path.Combine(BinDirectory, tool), .. arguments];

    private static void Run(params string[] command)
    {
        var (exitCode, output) = Execute(command);
        if (exitCode != 0)
        {
            var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
            throw new FerryStartException($"{Path.GetFileName(command[command[0] == "runuser" ? 4 : 0])} exited {exitCode}: {last}");
        }
    }

    private static bool Succeeds(params string[] command) => Execute(command).ExitCode == 0;

    private static (int ExitCode, string Output) Execute(string[] command)
    {
        var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = "/" };
        foreach (var argument in command[1..])
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"{command[0]} did not finish in 120 s");
        }
        return (process.ExitCode, error.Result + output.Result);
    }

    private static string LastLines(string file, int count)
    {
        try
        {
            return string.Join(" | ", File.ReadLines(file).TakeLast(count));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    internal static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
