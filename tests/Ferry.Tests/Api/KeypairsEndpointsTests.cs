using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;

namespace Ferry.Tests.Api;

[Collection(ComputeApiCollection.Name)]
public sealed class KeypairsEndpointsTests(ComputeApiFixture f)
{
    // Made with ssh-keygen; the fingerprints are what `ssh-keygen -l -E md5` prints for them.
    internal const string RsaKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCuPegIj5kKMV/321ykKvtNgXV48UhKW9zrhdodblizlUCmrFXGuO6/3LE43o04sCrhYBk/pMxWP6mhHKkBvjCv9qxPdpgJjYYZVFJhXL+2wPrr4S9gqUBIJtFwLZvyM+YKNyVG8HRv5MbXqNJ9FkJLC0IN9Xgmu7z0ndMm28KU2w== alice@example\n";
    internal const string RsaFingerprint = "65:31:11:a7:75:c9:1b:48:d8:51:b2:ca:19:d3:0b:df";
    private const string Ed25519Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAMBQ6v4Ctefx2tUr3KptM0wnhjrhUCz07gDnXn1VGN";
    private const string EcdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHZSQLiqEG4j38AkVOqanVSUyGpAdBnmAjbjbg3iesth+LjCnddITwpBBWIHcGR85rwOJ0IIDnnjgcdS6wj1PWw= e";

    // Made with openssl req -x509; the fingerprint is `openssl x509 -fingerprint -sha1`, lower-cased.
    private const string Certificate = """
        -----BEGIN CERTIFICATE-----
        MIIB/DCCAWWgAwIBAgIUZEeEwSdwUJU8iknCC3rbsyWBposwDQYJKoZIhvcNAQEL
        BQAwEDEOMAwGA1UEAwwFYWxpY2UwHhcNMjYxMTIzMTQ1ODU5WhcNMzYxMTIwMTQ1
        ODU5WjAQMQ4wDAYDVQQDDAVhbGljZTCBnzANBgkqhkiG9w0BAQEFAAOBjQAwgYkC
        gYEAvOUuQtl2YK7osfl9h1cAxqBQTFtMIVIqtZSIjTB8O859ZzHStQGOMoq81CJG
        K6oa4dvrO5CyCuwsboLnXo4uo+WXBGZugk4JUfiCi0tjZeaRketr1105CFmv/dFm
        pWAFP7M+HIRv/FZgFBLG4R5G6UnLN8JOfB/m3OU/GW1LpbsCAwEAAaNTMFEwHQYD
        VR0OBBYEFCQltrndHdx+P7iPnWeSF3Ul2Y+KMB8GA1UdIwQYMBaAFCQltrndHdx+
        P7iPnWeSF3Ul2Y+KMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADgYEA
        Ulf7diM3wKAnCG/vQ4SNzaVIyIHuSgSlt+KKOt1bDHJ7T/5dGaZcj/DJbXuDbCgI
        qFGwfshxGcvauR/ljgnUnGQ3+SKgX81GiAWCV/RoI8HB4snrD6EZ5hXO2MxKnDm0
        fDgq/4ldvGZeOOjBHSiQmlMIYgGgE0bEGbxnX6QJ1Z4=
        -----END CERTIFICATE-----

        """;
    private const string CertificateFingerprint = "66:bf:c1:9d:59:b4:41:77:e6:94:37:46:6d:8d:5e:09:2d:de:b5:24";

    private static string NewUser() => $"u{Guid.NewGuid():N}"[..12];

    private static JsonObject Import(string name, string publicKey, string? type = null)
    {
        var k = new JsonObject { ["name"] = name, ["public_key"] = publicKey };
        if (type is not null)
        {
            k["type"] = type;
        }
        return new JsonObject { ["keypair"] = k };
    }

    private static JsonObject Generate(string name, string? type = null)
    {
        var k = new JsonObject { ["name"] = name };
        if (type is not null)
        {
            k["type"] = type;
        }
        return new JsonObject { ["keypair"] = k };
    }

    [Theory]
    [InlineData(RsaKey, RsaFingerprint)]
    [InlineData(Ed25519Key, "84:12:70:15:8b:c0:ff:7d:8b:c3:11:83:2b:95:75:0f")]
    [InlineData(EcdsaKey, "31:1c:5b:7b:3a:93:53:d4:87:64:cb:bc:f1:5c:7e:aa")]
    public async Task Create_ImportOpenSshKeyAtLatest_Returns201WithMd5FingerprintAndNoPrivateKey(string publicKey, string fingerprint)
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("k1", publicKey), token: $"{user}:p1");

        Assert.Equal(201, r.Status);
        var k = r.Json!["keypair"]!.AsObject();
        Assert.Equal(["fingerprint", "name", "public_key", "type", "user_id"], k.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(("k1", publicKey, fingerprint, "ssh", user),
            ((string?)k["name"], (string?)k["public_key"], (string?)k["fingerprint"], (string?)k["type"], (string?)k["user_id"]));
        var shown = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/k1", token: $"{user}:p1");
        Assert.Equal((fingerprint, publicKey), ((string?)shown.Json!["keypair"]!["fingerprint"], (string?)shown.Json["keypair"]!["public_key"]));
    }

    [Fact]
    public async Task Create_WithoutPublicKeyAt291_GeneratesMatchingRsaKeyPair()
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Generate("gen"), token: $"{user}:p1", version: "2.91");

        Assert.Equal(201, r.Status);
        var k = r.Json!["keypair"]!;
        var publicKey = (string)k["public_key"]!;
        var parts = publicKey.Split(' ');
        Assert.Equal(("ssh-rsa", "Generated-by-Nova"), (parts[0], parts[2]));
        var blob = Convert.FromBase64String(parts[1]);
        Assert.Equal(string.Join(':', MD5.HashData(blob).Select(b => b.ToString("x2"))), (string?)k["fingerprint"]);
        var privateKey = (string)k["private_key"]!;
        Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----", privateKey, StringComparison.Ordinal);
        using var rsa = RSA.Create();
        rsa.ImportFromPem(privateKey);
        var modulus = rsa.ExportParameters(false).Modulus!;
        Assert.Equal(2048, rsa.KeySize);
        Assert.True(blob.AsSpan().EndsWith(modulus), "the public key's blob does not end with the private key's modulus");
        var shown = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/gen", token: $"{user}:p1");
        Assert.Equal(publicKey, (string?)shown.Json!["keypair"]!["public_key"]);
        Assert.False(shown.Json["keypair"]!.AsObject().ContainsKey("private_key"));
    }

    [Fact]
    public async Task Create_WithoutPublicKeyAt292_Returns400AndCreatesNothing()
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Generate("gen"), token: $"{user}:p1", version: "2.92");

        Assert.Equal(400, r.Status);
        Assert.Contains("'public_key' is a required property", r.FaultMessage, StringComparison.Ordinal);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/gen", token: $"{user}:p1")).Status);
    }

    [Fact]
    public async Task Microversion21_NoTypeCreate200AndDelete202()
    {
        var user = NewUser();
        var token = $"{user}:p1";

        var created = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("old", RsaKey), token: token, version: null);
        var typed = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("old2", RsaKey, "ssh"), token: token, version: "2.1");
        var list = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs", token: token, version: "2.1");
        var show = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/old", token: token, version: "2.1");
        var deleted = await f.SendAsync(HttpMethod.Delete, "v2.1/os-keypairs/old", token: token, version: "2.1");

        Assert.Equal(200, created.Status);
        Assert.False(created.Json!["keypair"]!.AsObject().ContainsKey("type"));
        Assert.Equal(400, typed.Status);
        Assert.Contains("'type' was unexpected", typed.FaultMessage, StringComparison.Ordinal);
        Assert.Equal(["fingerprint", "name", "public_key"], list.Json!["keypairs"]![0]!["keypair"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.False(show.Json!["keypair"]!.AsObject().ContainsKey("type"));
        Assert.Equal(202, deleted.Status);
    }

    [Fact]
    public async Task Show_At22_ReturnsNovasShowKeysAndDelete204()
    {
        var user = NewUser();
        var createdAt = f.Time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture);
        await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("k", RsaKey), token: $"{user}:p1");

        var r = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/k", token: $"{user}:p1", version: "2.2");
        var deleted = await f.SendAsync(HttpMethod.Delete, "v2.1/os-keypairs/k", token: $"{user}:p1", version: "2.2");

        Assert.Equal(200, r.Status);
        var k = r.Json!["keypair"]!.AsObject();
        Assert.Equal(
            ["created_at", "deleted", "deleted_at", "fingerprint", "id", "name", "public_key", "type", "updated_at", "user_id"],
            k.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal((false, "ssh", user, createdAt), ((bool)k["deleted"]!, (string?)k["type"], (string?)k["user_id"], (string?)k["created_at"]));
        Assert.Null(k["deleted_at"]);
        Assert.Equal(204, deleted.Status);
        Assert.Equal(404, (await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/k", token: $"{user}:p1")).Status);
    }

    [Fact]
    public async Task List_At235_PagesByNameWithNextLinkAndBadMarkerIs400()
    {
        var user = NewUser();
        var token = $"{user}:p1";
        foreach (var name in new[] { "c", "a", "b" })
        {
            Assert.Equal(201, (await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import(name, RsaKey), token: token)).Status);
        }

        var page = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?limit=2", token: token, version: "2.35");
        var rest = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?limit=2&marker=b", token: token, version: "2.35");
        var unpaged = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?limit=2", token: token, version: "2.34");
        var badMarker = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?marker=zz", token: token, version: "2.35");

        static List<string> Names(ApiResponse r) => r.Json!["keypairs"]!.AsArray().Select(k => (string)k!["keypair"]!["name"]!).ToList();
        Assert.Equal(["a", "b"], Names(page));
        Assert.EndsWith("/v2.1/os-keypairs?limit=2&marker=b", (string?)page.Json!["keypairs_links"]![0]!["href"], StringComparison.Ordinal);
        Assert.Equal(["c"], Names(rest));
        Assert.Null(rest.Json!["keypairs_links"]);
        Assert.Equal(3, Names(unpaged).Count);
        Assert.Equal((400, "Marker zz could not be found."), (badMarker.Status, badMarker.FaultMessage));
    }

    [Theory]
    [InlineData("ssh-rsa not-base64!", "2.95")]
    [InlineData("garbage", "2.95")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQABAAAAgQCuPegIj5kKMV", "2.95")]
    [InlineData("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIKAMBQ6v4Ctefx2tUr3KptM0wnhjrhUCz07gDnXn1VGN", "2.95")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAMBQ6v4Ctefx2tUr3KptM0wnhjrhUCz07gDnXn1VG", "2.95")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKAMBQ6v4Ctefx2tUr3KptM0wnhjrhUCz07gDnXn1VGNAAAA", "2.95")]
    [InlineData("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCuPegIj5kKMV/321ykKvtNgXV48UhKW9zrhdodblizlUCmrFXGuO6", "2.1")]
    public async Task Create_GarbagePublicKey_Returns400WithNovasMessageAndCreatesNothing(string publicKey, string version)
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("bad", publicKey), token: $"{user}:p1", version: version);

        Assert.Equal((400, "badRequest", "Keypair data is invalid: failed to generate fingerprint"), (r.Status, r.FaultName, r.FaultMessage));
        Assert.Empty((await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs", token: $"{user}:p1")).Json!["keypairs"]!.AsArray());
    }

    [Fact]
    public async Task Create_DuplicateName_Returns409InNovasShape()
    {
        var user = NewUser();
        await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("dup", RsaKey), token: $"{user}:p1");

        var again = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("dup", Ed25519Key), token: $"{user}:p1");
        var otherUser = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("dup", Ed25519Key), token: $"{NewUser()}:p1");

        Assert.Equal((409, "conflictingRequest", "Key pair 'dup' already exists."), (again.Status, again.FaultName, again.FaultMessage));
        Assert.Equal(201, otherUser.Status);
        Assert.Equal(RsaKey, (string?)(await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/dup", token: $"{user}:p1")).Json!["keypair"]!["public_key"]);
    }

    [Theory]
    [InlineData("has/slash", "2.95", 400)]
    [InlineData("a@b.c", "2.91", 400)]
    [InlineData("a@b.c", "2.92", 201)]
    [InlineData("with space_and-dash", "2.2", 201)]
    [InlineData("", "2.2", 400)]
    public async Task Create_NameCharacters_FollowNovasSchemaPerMicroversion(string name, string version, int status)
    {
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import(name, RsaKey), token: $"{NewUser()}:p1", version: version);

        Assert.Equal(status, r.Status);
        if (status == 400 && name.Length > 0)
        {
            Assert.StartsWith("An invalid 'name' value was provided. The name must be: Only expected characters: [", r.FaultMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Create_NameOver255Characters_Returns400()
    {
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import(new string('k', 256), RsaKey), token: $"{NewUser()}:p1");

        Assert.Equal(400, r.Status);
        Assert.Contains("is too long", r.FaultMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShowAndDelete_Missing_Return404WithNovasMessage()
    {
        var user = NewUser();

        var show = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/none", token: $"{user}:p1");
        var delete = await f.SendAsync(HttpMethod.Delete, "v2.1/os-keypairs/none", token: $"{user}:p1");

        Assert.Equal((404, "itemNotFound", $"Keypair none not found for user {user}"), (show.Status, show.FaultName, show.FaultMessage));
        Assert.Equal((404, $"Keypair none not found for user {user}"), (delete.Status, delete.FaultMessage));
    }

    [Fact]
    public async Task AnotherUsersKeypair_InvisibleToUsersEvenInTheSameProject_AdminReachesItFrom210()
    {
        var alice = NewUser();
        var bob = NewUser();
        await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("mine", RsaKey), token: $"{alice}:shared");

        var bobShow = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/mine", token: $"{bob}:shared");
        var bobList = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs", token: $"{bob}:shared");
        var bobDelete = await f.SendAsync(HttpMethod.Delete, "v2.1/os-keypairs/mine", token: $"{bob}:shared");
        var bobAsAlice = await f.SendAsync(HttpMethod.Get, $"v2.1/os-keypairs?user_id={alice}", token: $"{bob}:shared");
        var bobCreatesForAlice = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs",
            new JsonObject { ["keypair"] = new JsonObject { ["name"] = "x", ["public_key"] = RsaKey, ["user_id"] = alice } }, token: $"{bob}:shared");
        var adminAt210 = await f.SendAsync(HttpMethod.Get, $"v2.1/os-keypairs/mine?user_id={alice}", version: "2.10");
        var adminAt29 = await f.SendAsync(HttpMethod.Get, $"v2.1/os-keypairs/mine?user_id={alice}", version: "2.9");
        var adminList = await f.SendAsync(HttpMethod.Get, $"v2.1/os-keypairs?user_id={alice}", version: "2.10");

        Assert.Equal(404, bobShow.Status);
        Assert.Empty(bobList.Json!["keypairs"]!.AsArray());
        Assert.Equal(404, bobDelete.Status);
        Assert.Equal((403, "Policy doesn't allow os_compute_api:os-keypairs:index to be performed."), (bobAsAlice.Status, bobAsAlice.FaultMessage));
        Assert.Equal((403, "Policy doesn't allow os_compute_api:os-keypairs:create to be performed."), (bobCreatesForAlice.Status, bobCreatesForAlice.FaultMessage));
        Assert.Equal((200, alice), (adminAt210.Status, (string?)adminAt210.Json!["keypair"]!["user_id"]));
        Assert.Equal(404, adminAt29.Status);
        Assert.Equal("mine", (string?)Assert.Single(adminList.Json!["keypairs"]!.AsArray())!["keypair"]!["name"]);
    }

    [Fact]
    public async Task Create_AdminForAnotherUserAt210_KeypairBelongsToThatUser()
    {
        var carol = NewUser();
        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs",
            new JsonObject { ["keypair"] = new JsonObject { ["name"] = "given", ["public_key"] = RsaKey, ["user_id"] = carol } }, version: "2.10");
        var tooOld = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs",
            new JsonObject { ["keypair"] = new JsonObject { ["name"] = "given2", ["public_key"] = RsaKey, ["user_id"] = carol } }, version: "2.9");

        Assert.Equal((201, carol), (r.Status, (string?)r.Json!["keypair"]!["user_id"]));
        Assert.Equal(200, (await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs/given", token: $"{carol}:p9")).Status);
        Assert.Equal(400, tooOld.Status);
    }

    [Fact]
    public async Task Create_X509Certificate_FingerprintIsSha1OfTheCertificate()
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("cert", Certificate, "x509"), token: $"{user}:p1", version: "2.2");
        var bad = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("cert2", RsaKey, "x509"), token: $"{user}:p1", version: "2.2");
        var badType = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("cert3", RsaKey, "pgp"), token: $"{user}:p1", version: "2.2");

        Assert.Equal((201, "x509", CertificateFingerprint), (r.Status, (string?)r.Json!["keypair"]!["type"], (string?)r.Json["keypair"]!["fingerprint"]));
        Assert.Equal(400, bad.Status);
        Assert.StartsWith("Keypair data is invalid: failed to generate X509 fingerprint.", bad.FaultMessage, StringComparison.Ordinal);
        Assert.Equal(400, badType.Status);
        Assert.Contains("'pgp' is not one of ['ssh', 'x509']", badType.FaultMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_X509WithoutPublicKey_GeneratesClientCertificateForTheUser()
    {
        var user = NewUser();

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Generate("winrm", "x509"), token: $"{user}:p1", version: "2.10");

        Assert.Equal(201, r.Status);
        var k = r.Json!["keypair"]!;
        using var cert = X509Certificate2.CreateFromPem((string)k["public_key"]!);
        Assert.Equal($"CN={user}", cert.Subject);
        Assert.Equal(string.Join(':', cert.GetCertHash().Select(b => b.ToString("x2"))), (string?)k["fingerprint"]);
        using var bundle = X509CertificateLoader.LoadPkcs12(Convert.FromBase64String((string)k["private_key"]!), "");
        Assert.True(bundle.HasPrivateKey);
        Assert.Equal(cert.Thumbprint, bundle.Thumbprint);
    }

    [Fact]
    public async Task Create_OverTheKeypairQuota_Returns403()
    {
        var user = NewUser();
        for (var i = 0; i < 100; i++)
        {
            f.Db.Write((c, t) =>
            {
                using var insert = Ferry.ControlPlane.Persistence.FerryDatabase.Command(c, t,
                    "INSERT INTO key_pairs(user_id, name, type, fingerprint, public_key, created_at) VALUES (@u, @n, 'ssh', 'f', 'k', '2026-11-22T10:00:00Z')",
                    ("@u", user), ("@n", $"k{i}"));
                insert.ExecuteNonQuery();
            });
        }

        var r = await f.SendAsync(HttpMethod.Post, "v2.1/os-keypairs", Import("one-more", RsaKey), token: $"{user}:p1");

        Assert.Equal((403, "Quota exceeded, too many key pairs."), (r.Status, r.FaultMessage));
    }

    [Fact]
    public async Task Query_UnknownParameterFrom275_Returns400()
    {
        var user = NewUser();

        var at275 = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?bogus=1", token: $"{user}:p1", version: "2.75");
        var at274 = await f.SendAsync(HttpMethod.Get, "v2.1/os-keypairs?bogus=1", token: $"{user}:p1", version: "2.74");

        Assert.Equal((400, "Additional properties are not allowed ('bogus' was unexpected)"), (at275.Status, at275.FaultMessage));
        Assert.Equal(200, at274.Status);
    }
}
