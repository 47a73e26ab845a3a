using System.Globalization;
using System.Security.Cryptography;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// PBKDF2-HMAC-SHA256 password hashes in the text form <c>pbkdf2-sha256$&lt;iterations&gt;$&lt;salt b64&gt;$&lt;hash b64&gt;</c>
/// (passlib's layout; Keystone itself defaults to bcrypt). Verification is constant-time.
/// </summary>
public static class PasswordHasher
{
    public const string Scheme = "pbkdf2-sha256";
    public const int DefaultIterations = 210_000;
    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    [ThreadStatic]
    private static int t_verifications;

    /// <summary>How many hashes <see cref="Verify"/> computed on this thread (lets tests see that a login hashed, without timing it).</summary>
    internal static int VerificationsOnThisThread => t_verifications;

    public static string Hash(string password, int iterations = DefaultIterations)
    {
        ArgumentException.ThrowIfNullOrEmpty(password);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(password, salt, iterations, HashAlgorithmName.SHA256, HashBytes);
        return string.Join('$', Scheme, iterations.ToString(CultureInfo.InvariantCulture), Convert.ToBase64String(salt), Convert.ToBase64String(hash));
    }

    /// <summary>The iteration count of a hash, or null when it is not one of ours.</summary>
    public static int? Iterations(string encoded) =>
        encoded.Split('$') is [Scheme, var text, _, _] && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : null;

    /// <summary>True when <paramref name="password"/> matches; false for a wrong password or a malformed hash.</summary>
    public static bool Verify(string password, string encoded)
    {
        var parts = encoded.Split('$');
        if (parts.Length != 4 || parts[0] != Scheme
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var iterations) || iterations < 1)
        {
            return false;
        }
        byte[] salt, expected;
        try
        {
            salt = Convert.FromBase64String(parts[2]);
            expected = Convert.FromBase64String(parts[3]);
        }
        catch (FormatException)
        {
            return false;
        }
        if (expected.Length == 0)
        {
            return false;
        }
        t_verifications++;
        var actual = Rfc2898DeriveBytes.Pbkdf2(password, salt, iterations, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }
}
