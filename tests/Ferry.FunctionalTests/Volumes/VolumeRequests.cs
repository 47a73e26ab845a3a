using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Host;

namespace Ferry.FunctionalTests.Volumes;

/// <summary>Requests the volume tests make of the volume API directly (noauth2, as admin).</summary>
internal static class VolumeRequests
{
    /// <summary>Creates a 1 GiB volume (bootable when made from <paramref name="imageRef"/>) and returns its id.</summary>
    public static async Task<string> CreateAsync(AllInOne ferry, string? imageRef = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(ferry.Options.VolumeUrl + "/") };
        var volume = new JsonObject { ["size"] = 1, ["name"] = imageRef is null ? "data" : "boot" };
        if (imageRef is not null)
        {
            volume["imageRef"] = imageRef;
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, "v3/volumes")
        {
            Content = new StringContent(new JsonObject { ["volume"] = volume }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Auth-Token", "admin:admin");
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, text);
        return (string)JsonNode.Parse(text)!["volume"]!["id"]!;
    }
}
