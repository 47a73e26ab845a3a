using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary><c>openstack keypair create/list/show/delete</c> and <c>server create --key-name</c> through the real client.</summary>
public sealed class KeypairCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    // Made with ssh-keygen; the fingerprint is what `ssh-keygen -l -E md5` prints for it.
    private const string PublicKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCuPegIj5kKMV/321ykKvtNgXV48UhKW9zrhdodblizlUCmrFXGuO6/3LE43o04sCrhYBk/pMxWP6mhHKkBvjCv9qxPdpgJjYYZVFJhXL+2wPrr4S9gqUBIJtFwLZvyM+YKNyVG8HRv5MbXqNJ9FkJLC0IN9Xgmu7z0ndMm28KU2w== alice@example\n";
    private const string Fingerprint = "65:31:11:a7:75:c9:1b:48:d8:51:b2:ca:19:d3:0b:df";

    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync("2.latest", args);

    [Fact]
    public async Task Keypair_import_list_show_boot_with_key_and_delete()
    {
        fixture.RequireOpenStack();
        var file = Path.Combine(fixture.DataDirectory, "k1.pub");
        await File.WriteAllTextAsync(file, PublicKey);

        var created = await AdminAsync("keypair", "create", "--public-key", file, "k1");
        Assert.Equal(("k1", Fingerprint, "ssh"), ((string?)created["name"], (string?)created["fingerprint"], (string?)created["type"]));

        var listed = (await AdminAsync("keypair", "list")).AsArray();
        var row = Assert.Single(listed, k => (string?)k!["Name"] == "k1")!;
        Assert.Equal((Fingerprint, "ssh"), ((string?)row["Fingerprint"], (string?)row["Type"]));

        var shown = await AdminAsync("keypair", "show", "k1");
        Assert.Equal(Fingerprint, (string?)shown["fingerprint"]);
        Assert.False(string.IsNullOrEmpty((string?)shown["user_id"]));
        var bare = await fixture.AdminRunAsync("2.latest", "keypair", "show", "--public-key", "k1");
        Assert.Equal(PublicKey.TrimEnd(), bare.Stdout.TrimEnd());

        var server = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none",
            "--key-name", "k1", "--wait", "cli-keyed");
        Assert.Equal("ACTIVE", (string?)server["status"]);
        Assert.Equal("k1", (string?)(await AdminAsync("server", "show", (string)server["id"]!))["key_name"]);

        var unknown = await fixture.RunAsync(fixture.AdminEnv, "server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest",
            "--nic", "none", "--key-name", "nope", "cli-bad-key");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("Invalid key_name provided.", unknown.Stderr, StringComparison.Ordinal);

        await fixture.AdminRunAsync("2.latest", "keypair", "delete", "k1");
        Assert.DoesNotContain((await AdminAsync("keypair", "list")).AsArray(), k => (string?)k!["Name"] == "k1");
        Assert.Equal("k1", (string?)(await AdminAsync("server", "show", (string)server["id"]!))["key_name"]);
        var gone = await fixture.RunAsync(fixture.AdminEnv, "keypair", "show", "k1");
        Assert.NotEqual(0, gone.ExitCode);
    }

    [Fact]
    public async Task Keypair_generation_with_client_defaults_writes_private_key_and_292_requires_public_key()
    {
        fixture.RequireOpenStack();
        var privateFile = Path.Combine(fixture.DataDirectory, "k2.pem");

        // From 2.92 Nova no longer generates keys; an explicit 2.92 reaches the server as such.
        var at292 = await fixture.RunAsync(fixture.AdminEnv, "--os-compute-api-version", "2.92", "keypair", "create", "--private-key", privateFile, "k2");
        Assert.NotEqual(0, at292.ExitCode);
        Assert.Contains("'public_key' is a required property", at292.Stderr, StringComparison.Ordinal);

        // The openrc's OS_COMPUTE_API_VERSION=2.latest sets no default microversion in openstacksdk 0.101, whose
        // Keypair resource caps requests at 2.10: generation works with the client's defaults.
        var created = await fixture.JsonAsync(fixture.AdminEnv, "keypair", "create", "--private-key", privateFile, "k2");
        Assert.Equal("k2", (string?)created["name"]);
        var pem = await File.ReadAllTextAsync(privateFile);
        Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----", pem, StringComparison.Ordinal);
        using var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        var publicKey = (await fixture.AdminRunAsync("2.latest", "keypair", "show", "--public-key", "k2")).Stdout.Trim();
        var blob = Convert.FromBase64String(publicKey.Split(' ')[1]);
        Assert.True(blob.AsSpan().EndsWith(rsa.ExportParameters(false).Modulus), "the saved private key does not match the stored public key");
        Assert.Equal((string?)created["fingerprint"], string.Join(':', MD5.HashData(blob).Select(b => b.ToString("x2"))));
    }
}
