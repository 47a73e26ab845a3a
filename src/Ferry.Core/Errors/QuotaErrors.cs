namespace Ferry.Core.Errors;

/// <summary>
/// Nova's OverQuota family (TooManyInstances, KeypairLimitExceeded, MetadataLimitExceeded…). Nova's exception
/// carries 413 but every API that raises it answers 403 <c>forbidden</c>, so the status here is the API's.
/// </summary>
public sealed class OverQuotaException(string message) : ForbiddenException(message);
