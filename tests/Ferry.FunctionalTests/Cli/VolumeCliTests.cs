using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

/// <summary>
/// <c>openstack volume create/list/show/set/delete</c> through the real client (cinderclient, no microversion) against the
/// volume API (the Cinder subset), in both shapes; an attachment made the way Nova makes it holds a volume against delete.
/// </summary>
public sealed class VolumeCliTests(CliFixture fixture) : IClassFixture<CliFixture>
{
    private Task<JsonNode> AdminAsync(params string[] args) => fixture.AdminJsonAsync("2.latest", args);

    [Fact]
    public async Task Server_add_volume_then_volume_list_then_remove_volume()
    {
        fixture.RequireOpenStack();
        await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--nic", "none", "--wait", "cli-vol-server");
        var volume = await AdminAsync("volume", "create", "--size", "1", "cli-vol-data");

        var added = await fixture.RunAsync(fixture.AdminEnv, "server", "add", "volume", "cli-vol-server", "cli-vol-data");

        Assert.True(added.ExitCode == 0, added.ToString());
        var inUse = await WaitForVolumeStatusAsync("cli-vol-data", "in-use");
        var listed = Assert.Single((await AdminAsync("server", "volume", "list", "cli-vol-server")).AsArray())!;
        Assert.Equal(((string?)volume["id"], "/dev/vdb"), ((string?)listed["Volume ID"], (string?)listed["Device"]));
        Assert.Equal("/dev/vdb", (string?)Assert.Single(inUse["attachments"]!.AsArray())!["device"]);

        var removed = await fixture.RunAsync(fixture.AdminEnv, "server", "remove", "volume", "cli-vol-server", "cli-vol-data");

        Assert.True(removed.ExitCode == 0, removed.ToString());
        await WaitForVolumeStatusAsync("cli-vol-data", "available");
        Assert.Empty((await AdminAsync("server", "volume", "list", "cli-vol-server")).AsArray());
        var cleaned = await fixture.RunAsync(fixture.AdminEnv, "server", "delete", "--wait", "cli-vol-server");
        Assert.True(cleaned.ExitCode == 0, cleaned.ToString());
        Assert.Equal(0, (await fixture.RunAsync(fixture.AdminEnv, "volume", "delete", "cli-vol-data")).ExitCode);
    }

    [Fact]
    public async Task Server_create_from_a_volume_and_with_boot_from_volume_then_delete()
    {
        fixture.RequireOpenStack();
        var root = await AdminAsync("volume", "create", "--image", "ferry-test-guest", "--size", "1", "cli-bfv-root");

        var fromVolume = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--volume", "cli-bfv-root", "--nic", "none", "--wait", "cli-bfv-a");
        // Debian's client has no --delete-on-termination yet: the volume made at build stays when the server goes.
        var fromImage = await AdminAsync("server", "create", "--flavor", "m1.tiny", "--image", "ferry-test-guest", "--boot-from-volume", "1",
            "--nic", "none", "--wait", "cli-bfv-b");

        foreach (var server in new[] { fromVolume, fromImage })
        {
            Assert.Equal(("ACTIVE", "N/A (booted from volume)"), ((string?)server["status"], (string?)server["image"]));
        }
        Assert.Equal((string?)root["id"], (string?)fromVolume["volumes_attached"]![0]!["id"]);
        var made = (string)fromImage["volumes_attached"]![0]!["id"]!;
        var listed = Assert.Single((await AdminAsync("server", "volume", "list", "cli-bfv-b")).AsArray())!;
        Assert.Equal((made, "/dev/vda"), ((string?)listed["Volume ID"], (string?)listed["Device"]));
        Assert.Equal(("in-use", "true"), ((string?)(await AdminAsync("volume", "show", made))["status"], (string?)(await AdminAsync("volume", "show", made))["bootable"]));
        Assert.Equal("in-use", (string?)(await AdminAsync("volume", "show", "cli-bfv-root"))["status"]);

        var deleted = await fixture.RunAsync(fixture.AdminEnv, "server", "delete", "--wait", "cli-bfv-a", "cli-bfv-b");

        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        await WaitForVolumeStatusAsync("cli-bfv-root", "available");
        await WaitForVolumeStatusAsync(made, "available");
        Assert.Equal(0, (await fixture.RunAsync(fixture.AdminEnv, "volume", "delete", "cli-bfv-root", made)).ExitCode);
    }

    private async Task<JsonNode> WaitForVolumeStatusAsync(string name, string status)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var shown = await AdminAsync("volume", "show", name);
            if ((string?)shown["status"] == status)
            {
                return shown;
            }
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(60), $"volume {name} is {(string?)shown["status"]}, not {status}");
            await Task.Delay(250);
        }
    }

    [Fact]
    public async Task Volume_create_list_show_extend_then_delete_refused_while_attached_and_done_after()
    {
        fixture.RequireOpenStack();
        var created = await AdminAsync("volume", "create", "--size", "1", "cli-vol");
        var fromImage = await AdminAsync("volume", "create", "--image", "ferry-test-guest", "--size", "1", "cli-vol-image");

        Assert.Equal(("cli-vol", "available", 1, "false", "__DEFAULT__"),
            ((string?)created["name"], (string?)created["status"], (int)created["size"]!, (string?)created["bootable"], (string?)created["type"]));
        Assert.Equal(("available", "true"), ((string?)fromImage["status"], (string?)fromImage["bootable"]));

        var list = (await AdminAsync("volume", "list")).AsArray();
        var longList = (await AdminAsync("volume", "list", "--long")).AsArray();
        var row = list.Single(v => (string?)v!["Name"] == "cli-vol")!;
        Assert.Equal(((string?)created["id"], "available", 1), ((string?)row["ID"], (string?)row["Status"], (int)row["Size"]!));
        Assert.Empty(row["Attached to"]!.AsArray());
        var longRow = longList.Single(v => (string?)v!["Name"] == "cli-vol-image")!;
        Assert.Equal(("__DEFAULT__", "true"), ((string?)longRow["Type"], (string?)longRow["Bootable"]));

        var setSize = await fixture.RunAsync(fixture.AdminEnv, "volume", "set", "--size", "2", "cli-vol");
        Assert.True(setSize.ExitCode == 0, setSize.ToString());
        var shown = await AdminAsync("volume", "show", "cli-vol");
        Assert.Equal(((string?)created["id"], 2), ((string?)shown["id"], (int)shown["size"]!));

        var server = Guid.NewGuid().ToString();
        var attachment = await AttachAsync((string)created["id"]!, server);
        var attached = (await AdminAsync("volume", "list")).AsArray().Single(v => (string?)v!["Name"] == "cli-vol")!;
        Assert.Equal("in-use", (string?)attached["Status"]);
        var holder = Assert.Single(attached["Attached to"]!.AsArray())!;
        Assert.Equal((server, "/dev/vdb", attachment), ((string?)holder["server_id"], (string?)holder["device"], (string?)holder["attachment_id"]));
        // The table form names the server (by id: Nova does not know it) and the device.
        var table = await fixture.RunAsync(fixture.AdminEnv, "volume", "list", "--name", "cli-vol", "-f", "table", "-c", "Attached to");
        Assert.Contains($"Attached to {server} on /dev/vdb", table.Stdout, StringComparison.Ordinal);

        var refused = await fixture.RunAsync(fixture.AdminEnv, "volume", "delete", "cli-vol");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Failed to delete volume with name or ID 'cli-vol': Invalid volume: Volume status must be available or error or error_restoring or " +
            "error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be " +
            "disassociated from snapshots after volume transfer. (HTTP 400)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("1 of 1 volumes failed to delete.", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("in-use", (string?)(await AdminAsync("volume", "show", "cli-vol"))["status"]);

        await DetachAsync(attachment);
        var deleted = await fixture.RunAsync(fixture.AdminEnv, "volume", "delete", "cli-vol", "cli-vol-image");
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        var names = (await AdminAsync("volume", "list")).AsArray().Select(v => (string?)v!["Name"]).ToList();
        Assert.DoesNotContain("cli-vol", names);
        Assert.DoesNotContain("cli-vol-image", names);
    }

    /// <summary>Nova's attach through the attachments API (3.44), with the admin's token and the catalog's volume endpoint.</summary>
    private async Task<string> AttachAsync(string volumeId, string server)
    {
        var created = await SendAsync(HttpMethod.Post, "/attachments",
            $$$"""{"attachment": {"volume_uuid": "{{{volumeId}}}", "instance_uuid": "{{{server}}}", "connector": null}}""", HttpStatusCode.OK);
        var id = (string)created!["attachment"]!["id"]!;
        await SendAsync(HttpMethod.Put, $"/attachments/{id}", """{"attachment": {"connector": {"host": "compute1", "ip": "127.0.0.1", "mountpoint": "/dev/vdb"}}}""",
            HttpStatusCode.OK);
        await SendAsync(HttpMethod.Post, $"/attachments/{id}/action", """{"os-complete": null}""", HttpStatusCode.NoContent);
        return id;
    }

    private Task DetachAsync(string attachmentId) => SendAsync(HttpMethod.Delete, $"/attachments/{attachmentId}", null, HttpStatusCode.OK);

    private async Task<JsonNode?> SendAsync(HttpMethod method, string path, string? body, HttpStatusCode expected)
    {
        var token = (string)(await AdminAsync("token", "issue"))["id"]!;
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Add("X-Auth-Token", token);
        var catalog = JsonNode.Parse(await http.GetStringAsync($"{fixture.IdentityUrl}/v3/auth/catalog"))!["catalog"]!.AsArray();
        var endpoint = (string)catalog.Single(s => (string?)s!["type"] == "volumev3")!["endpoints"]!.AsArray().First(e => (string?)e!["interface"] == "public")!["url"]!;
        using var request = new HttpRequestMessage(method, endpoint + path);
        request.Headers.Add("OpenStack-API-Version", "volume 3.44");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? null : JsonNode.Parse(text);
    }
}
