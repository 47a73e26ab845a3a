using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>
/// Images reach a QEMU host through the image API (Nova's image cache): a host without an images directory downloads
/// an image into <c>_base</c> once, checked against the hashes Glance recorded at upload, and keeps nothing it cannot verify.
/// </summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuImageDownloadTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    private string DiskGuestPath => Path.Combine(Path.GetDirectoryName(Fixture.Ferry.Options.TestGuestKernelPath)!, "ferry-disk-guest.img");

    private async Task<string> UploadAsync(string name, byte[] bytes)
    {
        using var glance = new HttpClient { BaseAddress = new Uri(Fixture.Ferry.Options.ImageUrl + "/") };
        glance.DefaultRequestHeaders.Add("X-Auth-Token", "admin:admin");
        using var created = await glance.PostAsync("v2/images", new StringContent(
            $$"""{"name": "{{name}}", "disk_format": "raw", "container_format": "bare"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var imageId = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        using var data = new ByteArrayContent(bytes);
        data.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        Assert.Equal(HttpStatusCode.NoContent, (await glance.PutAsync($"v2/images/{imageId}/file", data)).StatusCode);
        return imageId;
    }

    private async Task<string> CreateServerAsync(string imageId, string name)
    {
        var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse($$$"""
            {"server": {"name": "{{{name}}}", "imageRef": "{{{imageId}}}", "flavorRef": "m1.nano", "networks": "none", "availability_zone": "nova:compute1"}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, status);
        var id = body!["server"]!["id"]!.GetValue<string>();
        Track(id);
        return id;
    }

    private string BasePath(string imageId) =>
        Path.Combine(Qemu("compute1").BaseDirectory, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(imageId))));

    [Fact]
    public async Task Boot_TwoGuestsOfAnImageOnlyTheImageServiceHas_OneVerifiedDownloadBootsBoth()
    {
        Assert.Null(Qemu("compute1").Options.ImagesPath);
        var bytes = await File.ReadAllBytesAsync(DiskGuestPath);
        var imageId = await UploadAsync("download-once", bytes);
        var downloadsBefore = Qemu("compute1").ImageDownloads;

        var ids = await Task.WhenAll(CreateServerAsync(imageId, "dl-a"), CreateServerAsync(imageId, "dl-b"));

        foreach (var id in ids)
        {
            var active = await WaitForAsync(id, i => i.VmState is VmState.Active or VmState.Error && i.TaskState is null, "ACTIVE");
            Assert.True(active.VmState == VmState.Active, $"{id}: {LastFault(id)}");
        }
        Assert.Equal(downloadsBefore + 1, Qemu("compute1").ImageDownloads);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(BasePath(imageId)));
        Assert.False(File.Exists(BasePath(imageId) + ".part"));
        var deadline = DateTime.UtcNow + WaitLimit;
        string output;
        do
        {
            await Task.Delay(250);
            output = (await Admin.ActionAsync(ids[0], JsonNode.Parse("""{"os-getConsoleOutput": {}}""")!)).Body!["output"]!.GetValue<string>();
            Assert.True(DateTime.UtcNow < deadline, $"no boot line from the downloaded disk: '{output}'");
        }
        while (!output.Contains("ferry-disk-guest booted from its disk", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Boot_ImageCorruptedInTheImageService_FailsWithAFaultAndLeavesNothingInBase()
    {
        var bytes = await File.ReadAllBytesAsync(DiskGuestPath);
        var imageId = await UploadAsync("corrupted", bytes);
        // The stored copy rots after upload: same size, one byte changed; Glance still reports the upload's hashes.
        var stored = Path.Combine(Fixture.Ferry.Options.DataDirectory, "images", imageId);
        var rotten = (byte[])bytes.Clone();
        rotten[100] ^= 0xff;
        await File.WriteAllBytesAsync(stored, rotten);

        var id = await CreateServerAsync(imageId, "corrupt");
        var failed = await WaitForAsync(id, i => i.VmState is VmState.Active or VmState.Error && i.TaskState is null, "ERROR");

        Assert.Equal(VmState.Error, failed.VmState);
        var expected = Convert.ToHexStringLower(SHA512.HashData(bytes));
        Assert.Equal($"Failed to download image {imageId}: Corrupt image download. Hash was {Convert.ToHexStringLower(SHA512.HashData(rotten))} expected {expected}", LastFault(id));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Qemu("compute1").BaseDirectory, Path.GetFileName(BasePath(imageId)) + "*"));
        Assert.Null(Qemu("compute1").GetProcessId(id));
    }
}
