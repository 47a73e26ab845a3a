using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>
/// The destination already holds the guest's files on unshared storage (nova.exception.DestinationDiskExists).
/// Copying over them could destroy the only good copy, so pre_live_migration refuses.
/// </summary>
public sealed class DestinationDiskExistsException(string path)
    : BadRequestException($"The supplied disk path ({path}) already exists, it is expected not to exist.");
