using Ferry.Core.Domain;

namespace Ferry.Core.Rpc.Scheduler;

/// <summary>
/// Pick hosts for one instance and claim the first in placement for the instance consumer.
/// Alternates (cold migration, build) are returned unclaimed.
/// </summary>
public sealed record SelectDestinationsRequest(RequestSpec RequestSpec, int NumAlternates);

public sealed record SelectDestinationsReply(List<Selection> Selections);
