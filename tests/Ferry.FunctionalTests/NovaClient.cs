using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests;

/// <summary>A thin client for the compute API, speaking JSON as the openstack CLI does.</summary>
public sealed class NovaClient : IDisposable
{
    private readonly HttpClient _http;

    public NovaClient(string computeUrl, string token, string microversion = "2.95")
    {
        _http = new HttpClient { BaseAddress = new Uri(computeUrl + "/v2.1/"), Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Add("X-Auth-Token", token);
        Microversion = microversion;
    }

    public string Microversion { get; set; }

    public async Task<(HttpStatusCode Status, JsonNode? Body)> SendAsync(HttpMethod method, string path, JsonNode? body = null, string? microversion = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add("OpenStack-API-Version", $"compute {microversion ?? Microversion}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, string.IsNullOrWhiteSpace(text) ? null : JsonNode.Parse(text));
    }

    public Task<(HttpStatusCode Status, JsonNode? Body)> GetAsync(string path, string? microversion = null) => SendAsync(HttpMethod.Get, path, null, microversion);

    public Task<(HttpStatusCode Status, JsonNode? Body)> PostAsync(string path, JsonNode? body, string? microversion = null) => SendAsync(HttpMethod.Post, path, body, microversion);

    public Task<(HttpStatusCode Status, JsonNode? Body)> ActionAsync(string serverId, JsonNode body, string? microversion = null) =>
        SendAsync(HttpMethod.Post, $"servers/{serverId}/action", body, microversion);

    public async Task<JsonNode> GetServerAsync(string id)
    {
        var (status, body) = await GetAsync($"servers/{id}");
        Assert.True(status == HttpStatusCode.OK, $"GET server {id}: {(int)status} {body?.ToJsonString()}");
        return body!["server"]!;
    }

    public void Dispose() => _http.Dispose();
}
