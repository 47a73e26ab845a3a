using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Host;

namespace Ferry.FunctionalTests.Images;

/// <summary>A Ferry whose image service caps uploads at 4 KiB (Glance's <c>image_size_cap</c>), set as `./ferry up --image-size-cap 4096` sets it.</summary>
public sealed class CappedImageFixture : FerryFixture
{
    public const long Cap = 4096;

    protected override void Configure(FerryHostOptions options) =>
        options.ImageSizeCap = FerryHostOptions.Parse(["--image-size-cap", Cap.ToString(CultureInfo.InvariantCulture)]).ImageSizeCap;
}

public sealed class ImageSizeCapTests(CappedImageFixture fixture) : IClassFixture<CappedImageFixture>
{
    private async Task<(HttpClient Http, string Id)> QueuedImageAsync()
    {
        var http = new HttpClient { BaseAddress = new Uri(fixture.Ferry.Options.ImageUrl + "/") };
        http.DefaultRequestHeaders.Add("X-Auth-Token", "demo:demo");
        using var create = await http.PostAsync("v2/images", new StringContent("""{"name": "big", "disk_format": "raw", "container_format": "bare"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        return (http, (string)(await create.Content.ReadFromJsonAsync<JsonNode>())!["id"]!);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Upload_BeyondCap_Is413AndLeavesImageQueuedWithoutData(bool chunked)
    {
        var (http, id) = await QueuedImageAsync();
        using (http)
        {
            HttpContent content = chunked
                ? new StreamContent(new MemoryStream(new byte[CappedImageFixture.Cap + 1]))
                : new ByteArrayContent(new byte[CappedImageFixture.Cap + 1]);
            if (chunked)
            {
                content.Headers.ContentLength = null;
            }
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var request = new HttpRequestMessage(HttpMethod.Put, $"v2/images/{id}/file") { Content = content };
            request.Headers.TransferEncodingChunked = chunked;
            using var upload = await http.SendAsync(request);

            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, upload.StatusCode);
            Assert.Equal("The incoming image is too large: The provided image is too large.", (string?)(await upload.Content.ReadFromJsonAsync<JsonNode>())!["message"]);
            var image = (await http.GetFromJsonAsync<JsonNode>($"v2/images/{id}"))!;
            Assert.Equal("queued", (string?)image["status"]);
            var images = Path.Combine(fixture.Ferry.Options.DataDirectory, "images");
            Assert.False(Directory.Exists(images) && Directory.EnumerateFiles(images, id + "*").Any());

            using var exact = new ByteArrayContent(new byte[CappedImageFixture.Cap]);
            exact.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            Assert.Equal(HttpStatusCode.NoContent, (await http.PutAsync($"v2/images/{id}/file", exact)).StatusCode);
        }
    }
}
