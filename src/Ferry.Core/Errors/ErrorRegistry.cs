namespace Ferry.Core.Errors;

/// <summary>Rebuilds a <see cref="FerryException"/> of the right type from what crossed the wire.</summary>
public static class ErrorRegistry
{
    // The message is carried whole; each factory wraps it without re-formatting.
    private static readonly Dictionary<string, Func<string, FerryException>> s_factories = new()
    {
        [nameof(BadRequestException)] = m => new BadRequestException(m),
        [nameof(ForbiddenException)] = m => new ForbiddenException(m),
        [nameof(NotFoundException)] = m => new NotFoundException(m),
        [nameof(ConflictException)] = m => new ConflictException(m),
        [nameof(InstanceNotFoundException)] = m => new NotFoundException(m),
        [nameof(InstanceInvalidStateException)] = m => new InstanceInvalidStateException(m),
        [nameof(UnexpectedTaskStateException)] = m => new UnexpectedTaskStateException(m),
        [nameof(NoValidHostException)] = m => new Rebuilt<NoValidHostException>(m, 400, nameof(NoValidHostException)),
        [nameof(MaxRetriesExceededException)] = m => new Rebuilt<MaxRetriesExceededException>(m, 400, nameof(MaxRetriesExceededException)),
        [nameof(MigrationPreCheckException)] = m => new Rebuilt<MigrationPreCheckException>(m, 400, nameof(MigrationPreCheckException)),
        [nameof(InvalidLocalStorageException)] = m => new Rebuilt<InvalidLocalStorageException>(m, 400, nameof(InvalidLocalStorageException)),
        [nameof(InvalidSharedStorageException)] = m => new Rebuilt<InvalidSharedStorageException>(m, 400, nameof(InvalidSharedStorageException)),
        [nameof(InvalidCpuInfoException)] = m => new Rebuilt<InvalidCpuInfoException>(m, 400, nameof(InvalidCpuInfoException)),
        [nameof(InjectedFailureException)] = m => new Rebuilt<InjectedFailureException>(m, 500, nameof(InjectedFailureException)),
        [nameof(InstanceFaultRollbackException)] = m => new InstanceFaultRollbackException(m),
        [nameof(InvalidMigrationStateException)] = m => new InvalidMigrationStateException(m),
        [nameof(ComputeServiceUnavailableException)] = m => new Rebuilt<ComputeServiceUnavailableException>(m, 400, nameof(ComputeServiceUnavailableException)),
        [nameof(UnableToMigrateToSelfException)] = m => new Rebuilt<UnableToMigrateToSelfException>(m, 400, nameof(UnableToMigrateToSelfException)),
        [nameof(RpcTimeoutException)] = m => new RpcTimeoutException(m),
        [nameof(RpcUnavailableException)] = m => new RpcUnavailableException(m),
        [nameof(LiveMigrationFailedException)] = m => new Rebuilt<LiveMigrationFailedException>(m, 500, nameof(LiveMigrationFailedException)),
        [nameof(PlacementConflictException)] = m => new PlacementConflictException(m),
    };

    public static FerryException Rebuild(string kind, string message, int httpStatus) =>
        s_factories.TryGetValue(kind, out var factory)
            ? factory(message)
            : httpStatus is >= 400 and < 500 ? new Rebuilt<FerryException>(message, httpStatus, kind) : new RemoteErrorException(kind, message);

    /// <summary>True when <paramref name="ex"/> is, or was rebuilt from, a <typeparamref name="T"/>.</summary>
    public static bool Is<T>(Exception ex) where T : FerryException =>
        ex is T || (ex is FerryException f && f.Kind == typeof(T).Name);

    /// <summary>An exception rebuilt from the wire whose original type has a formatted constructor.</summary>
    private sealed class Rebuilt<T>(string message, int status, string kind) : FerryException(message, status)
    {
        public override string Kind => kind;
    }
}
