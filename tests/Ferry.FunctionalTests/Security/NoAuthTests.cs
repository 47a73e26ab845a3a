using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Ferry.ControlPlane.Persistence;
using Npgsql;

namespace Ferry.FunctionalTests.Security;

/// <summary>noauth2 mode still wants <c>X-Auth-Token: user:project</c> on every API, and keeps the data directory owner-only.</summary>
public sealed class NoAuthTests(FerryFixture fixture) : IClassFixture<FerryFixture>
{
    private async Task<HttpStatusCode> SendAsync(HttpMethod method, string url, string? token, string? body = null, string contentType = "application/json")
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(method, url);
        if (token is not null)
        {
            request.Headers.Add("X-Auth-Token", token);
        }
        request.Headers.Add("OpenStack-API-Version", "placement 1.39");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Placement_WithoutToken_Is401AndNonAdminIs403()
    {
        var placement = fixture.Ferry.Options.PlacementUrl;
        Assert.Equal(HttpStatusCode.OK, await SendAsync(HttpMethod.Get, $"{placement}/", null));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(HttpMethod.Get, $"{placement}/resource_providers", null));
        var provider = $$"""{"name": "sneaky", "uuid": "{{Guid.NewGuid()}}"}""";
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(HttpMethod.Post, $"{placement}/resource_providers", null, provider));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(HttpMethod.Post, $"{placement}/resource_providers", "demo:demo", provider));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(HttpMethod.Get, $"{placement}/resource_providers?name=sneaky", "admin:admin"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(HttpMethod.Get, $"{placement}/resource_providers", "admin:admin"));
    }

    [Fact]
    public async Task ImageWrites_WithoutToken_Are401()
    {
        var images = fixture.Ferry.Options.ImageUrl;
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(HttpMethod.Post, $"{images}/v2/images", null, """{"name": "anon"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(HttpMethod.Get, $"{images}/v2/images", null));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(HttpMethod.Delete, $"{images}/v2/images/2d4b7a1e-6c1f-4a3e-9a8e-f3e7c0d9b001", null));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(HttpMethod.Get, $"{images}/versions", null));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(HttpMethod.Get, $"{images}/v2/images", "demo:demo"));
    }

    [Fact]
    public async Task DataDirectory_DatabaseAndImageFiles_AreOwnerOnly()
    {
        var images = fixture.Ferry.Options.ImageUrl;
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Add("X-Auth-Token", "demo:demo");
        using var created = await http.PostAsync($"{images}/v2/images", new StringContent("""{"name": "mode", "disk_format": "raw", "container_format": "bare"}""", Encoding.UTF8, "application/json"));
        var id = (string)System.Text.Json.Nodes.JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!;
        using var data = new ByteArrayContent([1, 2, 3]);
        data.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        Assert.Equal(HttpStatusCode.NoContent, (await http.PutAsync($"{images}/v2/images/{id}/file", data)).StatusCode);

        var directory = fixture.Ferry.Options.DataDirectory;
        var files = Directory.EnumerateFiles(directory, "ferry.db*").Concat(Directory.EnumerateFiles(Path.Combine(directory, "images"))).ToList();
        if (DatabaseConnection.Parse(fixture.Ferry.Options.Database ?? Path.Combine(directory, "ferry.db")).Engine == DatabaseEngine.PostgreSql)
        {
            // The PostgreSQL shape keeps no database file here: the rows live in the server's own data directory.
            Assert.DoesNotContain(files, f => Path.GetFileName(f).StartsWith("ferry.db", StringComparison.Ordinal));
            await AssertPostgresDataOwnerOnlyAsync(fixture.Ferry.Options.Database!);
        }
        else
        {
            Assert.Contains(files, f => f.EndsWith("ferry.db", StringComparison.Ordinal));
        }
        Assert.Contains(files, f => f.EndsWith(id, StringComparison.Ordinal));
        Assert.All(files, f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
    }

    /// <summary>
    /// The PostgreSQL equivalent of an owner-only ferry.db: this Ferry's tables are in the database it was given, and the
    /// server keeps them in a data directory nobody but its owner can enter (the tests' server user may read the setting).
    /// </summary>
    private static async Task AssertPostgresDataOwnerOnlyAsync(string database)
    {
        await using var connection = new NpgsqlConnection(DatabaseConnection.Parse(database).ConnectionString);
        await connection.OpenAsync();
        await using var tables = new NpgsqlCommand("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('instances', 'migrations')", connection);
        Assert.Equal(2L, (long)(await tables.ExecuteScalarAsync())!);
        await using var show = new NpgsqlCommand("SHOW data_directory", connection);
        var dataDirectory = (string)(await show.ExecuteScalarAsync())!;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dataDirectory));
    }
}
