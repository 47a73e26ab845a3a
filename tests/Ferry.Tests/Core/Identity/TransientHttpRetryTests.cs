using System.Net;
using Ferry.Core.Identity;

namespace Ferry.Tests.Core.Identity;

public sealed class TransientHttpRetryTests
{
    /// <summary>Answers with the next status of its script (the last one repeats), or fails the connection on a null.</summary>
    private sealed class ScriptedHandler(params HttpStatusCode?[] script) : HttpMessageHandler
    {
        public int Attempts { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var status = script[Math.Min(Attempts, script.Length - 1)];
            Attempts++;
            return status is { } s
                ? Task.FromResult(new HttpResponseMessage(s) { RequestMessage = request })
                : throw new HttpRequestException("Connection refused (127.0.0.1:1)");
        }
    }

    private static async Task<(HttpStatusCode Status, int Attempts)> SendAsync(HttpMethod method, params HttpStatusCode?[] script)
    {
        var handler = new ScriptedHandler(script);
        using var http = new HttpClient(handler);
        using var response = await TransientHttpRetry.SendAsync(http, () => new HttpRequestMessage(method, "http://127.0.0.1:1/x"), CancellationToken.None);
        return (response.StatusCode, handler.Attempts);
    }

    [Fact]
    public async Task SendAsync_ServiceUnavailableTwiceThenOk_ReturnsOkAfterThreeAttempts()
    {
        Assert.Equal((HttpStatusCode.OK, 3), await SendAsync(HttpMethod.Get, HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable, HttpStatusCode.OK));
    }

    [Fact]
    public async Task SendAsync_AlwaysUnavailable_GivesUpAfterTheBoundedRetries()
    {
        Assert.Equal((HttpStatusCode.ServiceUnavailable, 1 + TransientHttpRetry.MaxRetries), await SendAsync(HttpMethod.Put, HttpStatusCode.ServiceUnavailable));
    }

    [Fact]
    public async Task SendAsync_PostAnsweredUnavailable_IsNotRepeated()
    {
        Assert.Equal((HttpStatusCode.ServiceUnavailable, 1), await SendAsync(HttpMethod.Post, HttpStatusCode.ServiceUnavailable));
    }

    [Fact]
    public async Task SendAsync_ConnectionFailsOnceThenAnswers_RetriesEvenAPost()
    {
        Assert.Equal((HttpStatusCode.Created, 2), await SendAsync(HttpMethod.Post, null, HttpStatusCode.Created));
    }

    [Fact]
    public async Task SendAsync_ConnectionAlwaysFails_ThrowsAfterTheBoundedRetries()
    {
        var handler = new ScriptedHandler([null]);
        using var http = new HttpClient(handler);

        await Assert.ThrowsAsync<HttpRequestException>(() =>
            TransientHttpRetry.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Get, "http://127.0.0.1:1/x"), CancellationToken.None));
        Assert.Equal(1 + TransientHttpRetry.MaxRetries, handler.Attempts);
    }

    [Fact]
    public async Task SendAsync_NotFound_IsNotRetried()
    {
        Assert.Equal((HttpStatusCode.NotFound, 1), await SendAsync(HttpMethod.Get, HttpStatusCode.NotFound));
    }
}
