using Ferry.Core.Identity;
using Ferry.Core.Images;
using Ferry.Core.Networking;
using Ferry.Core.Placement;
using Ferry.Core.Volumes;

namespace Ferry.Compute;

/// <summary>
/// The agent's clients of other services, built from its options as Nova builds keystoneauth adapters from its
/// [placement] and [glance] sections: one <see cref="KeystoneSession"/> for both (or a shared one), or noauth2's fixed token.
/// </summary>
public sealed record ServiceClients(PlacementHttpClient Placement, IImageService Images, NetworkHttpClient? Network, KeystoneSession? Session)
{
    /// <summary>The block storage service's client; null under noauth2 without a volume URL.</summary>
    public VolumeHttpClient? Volume { get; init; }

    /// <param name="httpClient">Used for every call (may come from IHttpClientFactory; its base address is not used).</param>
    /// <param name="session">A session to share (agents of one process); null: a new one from <see cref="ComputeOptions.ServiceCredentials"/>.</param>
    public static ServiceClients Create(ComputeOptions options, HttpClient httpClient, TimeProvider time, KeystoneSession? session = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.ServiceCredentials is null && (options.PlacementUrl is null || options.ImageUrl is null))
        {
            // Without credentials there is no token, hence no catalog to find the endpoints in.
            throw new ArgumentException("placement_url and image_url: both are needed without service credentials (noauth2).",
                options.PlacementUrl is null ? nameof(options.PlacementUrl) : nameof(options.ImageUrl));
        }
        if (options.ServiceCredentials is { } credentials)
        {
            var shared = session ?? new KeystoneSession(httpClient, credentials, time);
            return new(new PlacementHttpClient(httpClient, shared, options.PlacementUrl), new ImageHttpClient(httpClient, shared, options.ImageUrl),
                new NetworkHttpClient(httpClient, shared, options.NetworkUrl), shared)
            {
                Volume = new VolumeHttpClient(httpClient, shared, options.VolumeUrl),
            };
        }
        return new(new PlacementHttpClient(httpClient, options.NoAuthToken, options.PlacementUrl!),
            new ImageHttpClient(httpClient, options.ImageUrl!, options.NoAuthToken),
            options.NetworkUrl is { } network ? new NetworkHttpClient(httpClient, network, options.NoAuthToken) : null, null)
        {
            Volume = options.VolumeUrl is { } volume ? new VolumeHttpClient(httpClient, volume, options.NoAuthToken) : null,
        };
    }
}
