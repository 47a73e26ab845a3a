using Ferry.Core.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Api;

/// <summary>Marks endpoints Nova serves without authentication (the version documents).</summary>
internal sealed class AnonymousEndpoint
{
    public static readonly AnonymousEndpoint Instance = new();
}

/// <summary>
/// What Nova's paste pipeline and wsgi layer do around every controller: a request id, microversion
/// negotiation (406), authentication (401), the version headers on every answer, and one mapping of
/// <see cref="FerryException"/> to <c>{"&lt;faultName&gt;": {"code", "message"}}</c>. Nothing else escapes as a 500
/// without being logged.
/// </summary>
internal static partial class NovaRequestFilter
{
    /// <summary>"/v2.1/servers/x/action" → "servers" (names the refused policy family).</summary>
    private static string FirstSegmentAfterVersion(PathString path)
    {
        var segments = (path.Value ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        var i = segments.Length > 0 && segments[0].StartsWith('v') ? 1 : 0;
        return i < segments.Length ? segments[i] : "";
    }

    public static async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var requestId = $"req-{Guid.NewGuid()}";
        var headers = http.Response.Headers;
        headers["x-openstack-request-id"] = requestId;
        headers["x-compute-request-id"] = requestId;
        headers.Vary = $"{ApiVersion.HeaderName}, {ApiVersion.LegacyHeaderName}";
        try
        {
            var version = ApiVersion.Negotiate(http.Request.Headers);
            headers[ApiVersion.HeaderName] = $"compute {version}";
            headers[ApiVersion.LegacyHeaderName] = version.ToString();
            if (http.GetEndpoint()?.Metadata.GetMetadata<AnonymousEndpoint>() is null)
            {
                var authenticator = http.RequestServices.GetRequiredService<IRequestAuthenticator>();
                var identity = await authenticator.AuthenticateAsync(http, http.RequestAborted)
                    ?? throw new FerryException("The request you have made requires authentication.", StatusCodes.Status401Unauthorized);
                if (identity.ReadOnly && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method))
                {
                    // Nova's project-reader defaults allow only the GET policies.
                    throw RequestContext.PolicyDenied($"os_compute_api:{FirstSegmentAfterVersion(http.Request.Path)}");
                }
                new RequestContext(identity.UserId, identity.ProjectId, identity.IsAdmin, version, requestId).Attach(http);
            }
            if (!IsJsonContentType(http.Request.ContentType))
            {
                return NovaJson.Fault(StatusCodes.Status415UnsupportedMediaType, "badMediaType", "Unsupported Content-Type");
            }
            return await next(context);
        }
        catch (FerryException ex)
        {
            if (ex.HttpStatus >= 500)
            {
                Log.RequestFailed(Logger(http), ex, http.Request.Method, http.Request.Path);
            }
            return NovaJson.Fault(ex);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            Log.RequestFailed(Logger(http), ex, http.Request.Method, http.Request.Path);
            return NovaJson.Fault(StatusCodes.Status500InternalServerError, "computeFault",
                "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.");
        }
    }

    /// <summary>
    /// Nova's <c>Request.get_content_type</c>: no Content-Type, an empty one or <c>text/plain</c> is read as JSON;
    /// anything but JSON (XML, forms, multipart…) is refused with 415 before the body is looked at.
    /// </summary>
    internal static bool IsJsonContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return true;
        }
        var mediaType = contentType.Split(';', 2)[0].Trim();
        return mediaType.Length == 0
            || mediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/vnd.openstack.compute+json", StringComparison.OrdinalIgnoreCase);
    }

    private static ILogger Logger(HttpContext http) =>
        http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.ControlPlane.Api");

    private static partial class Log
    {
        [LoggerMessage(EventId = 3000, Level = LogLevel.Error, Message = "Unexpected error handling {Method} {Path}")]
        public static partial void RequestFailed(ILogger logger, Exception ex, string method, string path);
    }
}
