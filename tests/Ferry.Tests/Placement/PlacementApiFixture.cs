using Ferry.ControlPlane.Persistence;
using Ferry.ControlPlane.Placement;
using Ferry.Core.Placement;
using Ferry.Tests.Persistence;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Placement;

/// <summary>Placement's REST API on real Kestrel at 127.0.0.1:0 over a temp SQLite file, shared by one test class.</summary>
public sealed class PlacementApiFixture : IAsyncLifetime
{
    // FERRY_TEST_DATABASE=postgresql runs the placement API tests over PostgreSQL.
    private readonly TestDatabase _files = new(Environment.GetEnvironmentVariable("FERRY_TEST_DATABASE") == "postgresql" ? DatabaseEngine.PostgreSql : DatabaseEngine.Sqlite);
    private WebApplication? _app;

    public HttpClient Http { get; private set; } = null!;

    public PlacementHttpClient Client { get; private set; } = null!;

    public IPlacementService Service { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_files.Open());
        builder.Services.AddFerryPlacement();
        _app = builder.Build();
        _app.MapPlacementApi();
        await _app.StartAsync();

        Service = _app.Services.GetRequiredService<IPlacementService>();
        Http = new HttpClient { BaseAddress = new Uri(_app.Urls.Single()), Timeout = TimeSpan.FromSeconds(30) };
        Client = new PlacementHttpClient(Http, authToken: "test-token");
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        _files.Dispose();
    }
}
