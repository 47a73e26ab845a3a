using Ferry.Core.Errors;

namespace Ferry.Core.Identity;

/// <summary>The identity service refused a service's credentials (a wrong password, an unknown user or project).</summary>
public sealed class KeystoneAuthenticationException(string message, int httpStatus) : FerryException(message, httpStatus);
