using Ferry.ControlPlane.Persistence;
using Ferry.Core.Domain;

// In the global namespace so that every test file sees these without a using.
/// <summary>The catalog store's calls in blocking form, for tests and the benchmarks' seeding (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class CatalogStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static Flavor CreateFlavor(this CatalogStore store, Func<int, Flavor> build) => Wait(() => store.CreateFlavorAsync(build, CancellationToken.None));

    public static Flavor? FindFlavor(this CatalogStore store, string idOrName) => Wait(() => store.FindFlavorAsync(idOrName, CancellationToken.None));

    public static List<Flavor> ListFlavors(this CatalogStore store) => Wait(() => store.ListFlavorsAsync(CancellationToken.None));

    public static void DeleteFlavor(this CatalogStore store, string id) =>
        Task.Run(() => store.DeleteFlavorAsync(id, CancellationToken.None)).GetAwaiter().GetResult();

    public static Image SaveImage(this CatalogStore store, Image image) => Wait(() => store.SaveImageAsync(image, CancellationToken.None));

    public static Image? FindImage(this CatalogStore store, string idOrName) => Wait(() => store.FindImageAsync(idOrName, CancellationToken.None));

    public static List<Image> ListImages(this CatalogStore store) => Wait(() => store.ListImagesAsync(CancellationToken.None));

    public static Image? GetImage(this CatalogStore store, string id) => Wait(() => store.GetImageAsync(id, CancellationToken.None));

    public static bool DeleteImage(this CatalogStore store, string id) => Wait(() => store.DeleteImageAsync(id, CancellationToken.None));
}
