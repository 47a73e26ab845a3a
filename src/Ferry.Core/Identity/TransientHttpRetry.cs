using System.Net;
using Polly;
using Polly.Retry;

namespace Ferry.Core.Identity;

/// <summary>
/// The bounded retry of a service's HTTP calls (keystoneauth's connect_retries and status_code_retries): a failed
/// connection is tried again for any method, a 502/503/504 answer only for methods that are safe to repeat.
/// Three retries, backing off exponentially from 200 ms with jitter.
/// </summary>
public static class TransientHttpRetry
{
    public const int MaxRetries = 3;

    private static readonly ResiliencePipeline<HttpResponseMessage> s_pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
        .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
        {
            MaxRetryAttempts = MaxRetries,
            Delay = TimeSpan.FromMilliseconds(200),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            ShouldHandle = args => ValueTask.FromResult(args.Outcome switch
            {
                { Exception: HttpRequestException } => true,
                { Result: { } response } => IsTransient(response),
                _ => false,
            }),
            OnRetry = args =>
            {
                args.Outcome.Result?.Dispose(); // the answer that is retried is never read
                return ValueTask.CompletedTask;
            },
        })
        .Build();

    /// <summary>
    /// Sends a fresh request from <paramref name="newRequest"/> per attempt (a request message can be sent once).
    /// <see cref="HttpCompletionOption.ResponseHeadersRead"/> streams a large body instead of buffering it.
    /// </summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient httpClient, Func<HttpRequestMessage> newRequest, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead) =>
        await s_pipeline.ExecuteAsync(static async (state, ct) =>
        {
            using var request = state.newRequest();
            return await state.httpClient.SendAsync(request, state.completion, ct);
        }, (httpClient, newRequest, completion), cancellationToken);

    private static bool IsTransient(HttpResponseMessage response) =>
        response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout
        && response.RequestMessage?.Method != HttpMethod.Post;
}
