using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

namespace Ferry.Host;

/// <summary>What a new user needs to boot at once: devstack-shaped flavors and the test image.</summary>
internal static class Seed
{
    public const string TestImageId = "2d4b7a1e-6c1f-4a3e-9a8e-f3e7c0d9b001";

    public static async Task ApplyAsync(CatalogStore catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        (string Id, string Name, int Vcpus, int Ram, int Disk)[] flavors =
        [
            // devstack's order, so m1.tiny is internal id 1 as in Nova (migrations show it as Old/New Flavor).
            ("1", "m1.tiny", 1, 512, 1),
            ("2", "m1.small", 1, 2048, 20),
            ("3", "m1.medium", 2, 4096, 40),
            ("42", "m1.nano", 1, 64, 1),
        ];
        foreach (var f in flavors)
        {
            if (await catalog.FindFlavorAsync(f.Id, cancellationToken) is null)
            {
                await catalog.CreateFlavorAsync(internalId => new Flavor
                {
                    InternalId = internalId, Id = f.Id, Name = f.Name, Vcpus = f.Vcpus, MemoryMb = f.Ram, RootGb = f.Disk,
                }, cancellationToken);
            }
        }
        if (await catalog.FindImageAsync(TestImageId, cancellationToken) is null)
        {
            await catalog.SaveImageAsync(new Image
            {
                Id = TestImageId,
                Name = "ferry-test-guest",
                SizeBytes = 1 << 20,
                CreatedAt = time.GetUtcNow(),
                Properties = new() { ["hw_architecture"] = "x86_64" },
            }, cancellationToken);
        }
    }
}
