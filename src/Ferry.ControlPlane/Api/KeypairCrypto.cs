using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using Ferry.Core.Errors;

namespace Ferry.ControlPlane.Api;

/// <summary>A key pair made on the server: the private half is returned once and never stored.</summary>
internal sealed record GeneratedKeyPair(string PublicKey, string PrivateKey, string Fingerprint);

/// <summary>
/// What nova/crypto.py does for key pairs: check an imported OpenSSH public key by parsing its blob and
/// fingerprint it (colon-separated MD5 of the blob), fingerprint an x509 certificate (colon-separated
/// SHA-1 of its DER), and generate RSA-2048 ssh keys and WinRM x509 client certificates.
/// </summary>
internal static partial class KeypairCrypto
{
    public const string Ssh = "ssh";
    public const string X509 = "x509";

    /// <summary>Nova's generated public keys end with this comment.</summary>
    private const string GeneratedComment = "Generated-by-Nova";

    /// <summary>Fingerprint of a public key of <paramref name="type"/>; 400 InvalidKeypair when it does not parse.</summary>
    public static string Fingerprint(string publicKey, string type) =>
        type == X509 ? X509Fingerprint(publicKey) : SshFingerprint(publicKey);

    /// <summary>
    /// Parses <c>&lt;type&gt; &lt;base64 blob&gt; [comment]</c> as pyca/cryptography's load_ssh_public_key does:
    /// the blob's own type string must match, every field must be there and nothing may follow.
    /// </summary>
    public static string SshFingerprint(string publicKey)
    {
        try
        {
            var match = SshLine().Match(publicKey);
            if (!match.Success)
            {
                throw new FormatException("Invalid line format");
            }
            var blob = Convert.FromBase64String(match.Groups[2].Value);
            ValidateBlob(match.Groups[1].Value, blob);
            return Colons(MD5Fingerprint(blob));
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException or ArgumentException)
        {
            throw Invalid("failed to generate fingerprint");
        }
    }

    public static string X509Fingerprint(string pem)
    {
        try
        {
            if (!PemEncoding.TryFind(pem, out var fields) || pem[fields.Label] is not "CERTIFICATE")
            {
                throw new FormatException("Unable to load PEM file.");
            }
            using var cert = X509CertificateLoader.LoadCertificate(Convert.FromBase64String(pem[fields.Base64Data]));
            return Colons(cert.GetCertHash());
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException)
        {
            throw Invalid($"failed to generate X509 fingerprint. Error message: {ex.Message}");
        }
    }

    /// <summary>An RSA-2048 key: the private key as PEM (PKCS#1), the public one in OpenSSH format.</summary>
    public static GeneratedKeyPair GenerateSsh()
    {
        using var rsa = RSA.Create(2048);
        var p = rsa.ExportParameters(includePrivateParameters: false);
        var blob = new MemoryStream();
        WriteString(blob, Encoding.ASCII.GetBytes("ssh-rsa"));
        WriteString(blob, MpInt(p.Exponent!));
        WriteString(blob, MpInt(p.Modulus!));
        var publicKey = $"ssh-rsa {Convert.ToBase64String(blob.ToArray())} {GeneratedComment}";
        return new GeneratedKeyPair(publicKey, rsa.ExportRSAPrivateKeyPem() + "\n", Colons(MD5Fingerprint(blob.ToArray())));
    }

    /// <summary>
    /// Nova's generate_winrm_x509_cert: a self-signed client certificate for <c>CN=user</c> with the UPN
    /// <c>user@localhost</c>, valid ten years; the "private key" is the base64 PKCS#12 bundle without password.
    /// </summary>
    public static GeneratedKeyPair GenerateX509(string userId, DateTimeOffset now)
    {
        using var rsa = RSA.Create(2048);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(userId);
        var request = new CertificateRequest(subject.Build(), rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddUserPrincipalName($"{userId}@localhost");
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(now, now.AddYears(10));
        var pem = cert.ExportCertificatePem() + "\n";
        var pkcs12 = cert.Export(X509ContentType.Pkcs12, "");
        return new GeneratedKeyPair(pem, Convert.ToBase64String(pkcs12), Colons(cert.GetCertHash()));
    }

    public static BadRequestException Invalid(string reason) => new($"Keypair data is invalid: {reason}");

    private static void ValidateBlob(string type, ReadOnlySpan<byte> blob)
    {
        if (Encoding.ASCII.GetString(ReadString(ref blob)) != type)
        {
            throw new FormatException("Invalid key format");
        }
        switch (type)
        {
            case "ssh-rsa":
                var e = ReadMpInt(ref blob);
                var n = ReadMpInt(ref blob);
                if (e.Length == 0 || (e[^1] & 1) == 0 || n.Length == 0 || (n[^1] & 1) == 0)
                {
                    throw new FormatException("Invalid RSA key");
                }
                using (var rsa = RSA.Create())
                {
                    rsa.ImportParameters(new RSAParameters { Exponent = e, Modulus = n });
                }
                break;
            case "ssh-dss":
                for (var i = 0; i < 4; i++)
                {
                    if (ReadMpInt(ref blob).Length == 0)
                    {
                        throw new FormatException("Invalid DSA key");
                    }
                }
                break;
            case "ecdsa-sha2-nistp256" or "ecdsa-sha2-nistp384" or "ecdsa-sha2-nistp521":
                var curveName = type["ecdsa-sha2-".Length..];
                if (Encoding.ASCII.GetString(ReadString(ref blob)) != curveName)
                {
                    throw new FormatException("Curve name mismatch");
                }
                var point = ReadString(ref blob);
                var size = curveName switch { "nistp256" => 32, "nistp384" => 48, _ => 66 };
                if (point.Length != 1 + 2 * size || point[0] != 4)
                {
                    throw new FormatException("Compressed elliptic curve points are not supported");
                }
                var curve = curveName switch
                {
                    "nistp256" => ECCurve.NamedCurves.nistP256,
                    "nistp384" => ECCurve.NamedCurves.nistP384,
                    _ => ECCurve.NamedCurves.nistP521,
                };
                using (var ec = ECDsa.Create())
                {
                    // Importing checks that the point is on the curve, as from_encoded_point does.
                    ec.ImportParameters(new ECParameters { Curve = curve, Q = new ECPoint { X = point.Slice(1, size).ToArray(), Y = point.Slice(1 + size).ToArray() } });
                }
                break;
            case "ssh-ed25519":
                if (ReadString(ref blob).Length != 32)
                {
                    throw new FormatException("Invalid public key");
                }
                break;
            default:
                throw new FormatException("Unsupported key type");
        }
        if (!blob.IsEmpty)
        {
            throw new FormatException("Unexpected trailing data");
        }
    }

    private static ReadOnlySpan<byte> ReadString(ref ReadOnlySpan<byte> data)
    {
        if (data.Length < 4)
        {
            throw new FormatException("Invalid data");
        }
        var length = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (length > (uint)(data.Length - 4))
        {
            throw new FormatException("Invalid data");
        }
        var value = data.Slice(4, (int)length);
        data = data[(4 + (int)length)..];
        return value;
    }

    /// <summary>A non-negative SSH mpint as unsigned big-endian bytes without leading zeros.</summary>
    private static byte[] ReadMpInt(ref ReadOnlySpan<byte> data)
    {
        var raw = ReadString(ref data);
        if (!raw.IsEmpty && (raw[0] & 0x80) != 0)
        {
            throw new FormatException("Invalid data");
        }
        var start = 0;
        while (start < raw.Length && raw[start] == 0)
        {
            start++;
        }
        return raw[start..].ToArray();
    }

    private static byte[] MpInt(byte[] unsigned)
    {
        var start = 0;
        while (start < unsigned.Length - 1 && unsigned[start] == 0)
        {
            start++;
        }
        var trimmed = unsigned.AsSpan(start);
        return (trimmed[0] & 0x80) != 0 ? [0, .. trimmed] : trimmed.ToArray();
    }

    private static void WriteString(Stream stream, byte[] value)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)value.Length);
        stream.Write(length);
        stream.Write(value);
    }

    // Nova's fingerprint of an ssh key is the MD5 of its blob (what `ssh-keygen -l -E md5` prints); it is an
    // identifier the API has always returned, not a security control.
#pragma warning disable CA5351
    private static byte[] MD5Fingerprint(byte[] blob) => MD5.HashData(blob);
#pragma warning restore CA5351

    private static string Colons(byte[] hash) => string.Join(':', hash.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    [GeneratedRegex(@"\A(\S+)[ \t]+(\S+)")]
    private static partial Regex SshLine();
}
