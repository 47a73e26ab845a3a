using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Rpc;
using Ferry.Host.Messaging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>
/// The one place that turns the <c>database</c> and <c>transport</c> settings into a <see cref="FerryDatabase"/> and an
/// <see cref="IRpcTransport"/>. Every role of one process shares one instance (one database connection, one bus), so
/// roles composed as separate hosts in one process (tests, the all-in-one) meet exactly as separate processes would
/// through a shared database and broker. The database is opened on first use: a compute agent never opens it.
/// </summary>
public sealed class FerryInfrastructure : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly FerryHostOptions _options;
    private readonly TimeSpan _transportWait;
    private readonly TimeSpan _databaseWait;
    private FerryDatabase? _database;
    private PlacementService? _placement;
    private IRpcTransport? _transport;
    private DatabaseRpcDeduplicator? _deduplicator;

    /// <param name="apiOnly">The process is an api role alone: it waits <see cref="FerryHostOptions.ApiUnavailableWait"/>
    /// for the broker and the database, not the longer waits the conductor and agents need.</param>
    public FerryInfrastructure(FerryHostOptions options, bool apiOnly = false)
    {
        _options = options;
        _transportWait = apiOnly ? options.ApiUnavailableWait : options.TransportUnavailableWait;
        _databaseWait = apiOnly ? options.ApiUnavailableWait : options.DatabaseUnavailableWait;
        // A bad transport stops the start here, before anything is bound or opened.
        if (!options.UsesInProcessTransport)
        {
            _ = CreateTransport(options, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        }
    }

    /// <summary>
    /// The bus, created on first use with the first caller's loggers (the host's, once its container exists). The
    /// containers that hand it out may dispose it too when they stop, so a transport's disposal must be idempotent.
    /// </summary>
    public IRpcTransport TransportFor(ILoggerFactory loggers)
    {
        lock (_gate)
        {
            if (_transport is null)
            {
                _transport = CreateTransport(_options, loggers, _transportWait);
                if (_transport is RabbitMqTransport rabbitMq)
                {
                    // Only a process that serves conductor or scheduler (and so has the database) ever opens it for this.
                    _deduplicator = new DatabaseRpcDeduplicator(() => Database, TimeProvider.System);
                    rabbitMq.ReplicaTopicsDeduplicator = _deduplicator;
                }
            }
            return _transport;
        }
    }

    /// <summary>
    /// Connects a broker transport before its host starts, so a broker that cannot be reached is one line from
    /// <see cref="Ferry.Core.Errors.RpcUnavailableException"/> rather than the generic host's failed-start report.
    /// </summary>
    public static Task ConnectAsync(IServiceProvider services, CancellationToken ct) =>
        services.GetService(typeof(IRpcTransport)) is RabbitMqTransport rabbitMq ? rabbitMq.StartAsync(ct) : Task.CompletedTask;

    /// <summary>The database, opened and its schema brought up to date on first use.</summary>
    public FerryDatabase Database
    {
        get
        {
            lock (_gate)
            {
                if (_database is null)
                {
                    var database = OpenDatabase(_options.DatabaseSetting);
                    database.UnavailableWait = _databaseWait;
                    SyncSchema(database);
                    _database = database;
                }
                return _database;
            }
        }
    }

    /// <summary>
    /// Placement's state, one per process. Placement keeps its state in memory (loaded from the database once), so two
    /// copies in one process would disagree: the api, conductor and scheduler roles of one process share this one. Once
    /// placement's state is authoritative in the database (issue 10, part 2), each role can have its own.
    /// </summary>
    public PlacementService Placement
    {
        get
        {
            var database = Database;
            lock (_gate)
            {
                return _placement ??= new PlacementService(database);
            }
        }
    }

    /// <summary>
    /// The transport the settings name: <c>inprocess</c>, or RabbitMQ at a <c>rabbitmq://</c> (<c>amqp://</c>, <c>rabbit://</c>) URL,
    /// tuned by <see cref="FerryHostOptions.RabbitMq"/> when given. RabbitMQ's transport connects when its host starts
    /// (<see cref="Roles.RoleServices.AddFerryBus"/>); a bad URL stops the start here, in one line.
    /// </summary>
    /// <param name="unavailableWait">How long a call or cast waits for a broker that is away (default <see cref="FerryHostOptions.TransportUnavailableWait"/>).</param>
    public static IRpcTransport CreateTransport(FerryHostOptions options, ILoggerFactory loggers, TimeSpan? unavailableWait = null)
    {
        if (options.UsesInProcessTransport)
        {
            return new InProcessTransport(loggers.CreateLogger<InProcessTransport>());
        }
        var rabbitMq = options.RabbitMq ?? new RabbitMqOptions { Url = options.Transport, Exchange = options.ControlExchange, UnavailableWait = unavailableWait ?? options.TransportUnavailableWait };
        try
        {
            _ = RabbitMqEndpoint.Parse(rabbitMq.Url);
        }
        catch (FormatException ex)
        {
            throw new FerryStartException($"transport: {ex.Message}");
        }
        return new RabbitMqTransport(rabbitMq, new InMemoryRpcDeduplicator(TimeProvider.System), loggers.CreateLogger<RabbitMqTransport>(), TimeProvider.System);
    }

    /// <summary>The database a <c>database</c> setting names: a SQLite file path, or PostgreSQL (a <c>postgresql://</c> URI or <c>Host=…</c> string).</summary>
    public static FerryDatabase OpenDatabase(string database)
    {
        FerryDatabase opened;
        try
        {
            opened = new FerryDatabase(database);
        }
        catch (ArgumentException ex)
        {
            throw new FerryStartException($"database: {ex.Message}");
        }
        try
        {
            opened.CheckReachable();
            return opened;
        }
        catch (DatabaseUnavailableException ex)
        {
            opened.Dispose();
            throw new FerryStartException($"{ex.Message}; set database (FERRY_DATABASE or --database) to a running one");
        }
    }

    /// <summary>A connection string or URI of PostgreSQL rather than a SQLite file path.</summary>
    public static bool IsPostgres(string database) => DatabaseConnection.Parse(database).Engine == DatabaseEngine.PostgreSql;

    /// <summary>Brings every component's schema up to date (what `ferry db sync` runs; idempotent).</summary>
    public static void SyncSchema(FerryDatabase database) => DatabaseSchema.Sync(database);

    /// <summary>A URL without its password, for messages.</summary>
    public static string Redacted(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Contains(':', StringComparison.Ordinal)
            ? url.Replace(uri.UserInfo, uri.UserInfo.Split(':')[0] + ":***", StringComparison.Ordinal)
            : url;

    public async ValueTask DisposeAsync()
    {
        // The bus first: its listeners' last messages still record their outcomes in the database.
        if (_transport is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        _deduplicator?.Dispose();
        _database?.Dispose();
    }
}

/// <summary>A start that cannot go on for a reason the operator fixes in the settings: one line, exit 2, no stack trace.</summary>
public sealed class FerryStartException(string message) : Exception(message);
