using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.ControlPlane.Api;

/// <summary>The log line of an unexpected exception that an API's error mapping turned into its own 500 body.</summary>
internal static partial class ApiErrorLog
{
    public static void RequestFailed(HttpContext http, string service, Exception ex) =>
        RequestFailed(http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.ControlPlane.Api"),
            ex, service, http.Request.Method, http.Request.Path);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Error, Message = "Unexpected error in the {Service} API handling {Method} {Path}")]
    private static partial void RequestFailed(ILogger logger, Exception ex, string service, string method, string path);
}
