using Ferry.Core.Rpc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Host.Messaging;

public static class RabbitMqServiceCollectionExtensions
{
    /// <summary>
    /// Makes <see cref="RabbitMqTransport"/> the <see cref="IRpcTransport"/>, connected when the host starts (a broker
    /// that cannot be reached fails the start with one line naming it), with the in-memory deduplicator unless one is
    /// registered already (a database-backed one shared by replicas).
    /// </summary>
    public static IServiceCollection AddRabbitMqTransport(this IServiceCollection services, RabbitMqOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IRpcDeduplicator>(sp => new InMemoryRpcDeduplicator(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new RabbitMqTransport(options, sp.GetRequiredService<IRpcDeduplicator>(),
            sp.GetRequiredService<ILogger<RabbitMqTransport>>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IRpcTransport>(sp => sp.GetRequiredService<RabbitMqTransport>());
        services.AddHostedService<Starter>();
        return services;
    }

    private sealed class Starter(RabbitMqTransport transport) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => transport.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
