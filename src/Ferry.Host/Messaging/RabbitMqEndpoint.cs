namespace Ferry.Host.Messaging;

/// <summary>A parsed <see cref="RabbitMqOptions.Url"/>; <see cref="Display"/> is the URL without its password, fit for logs and errors.</summary>
internal sealed record RabbitMqEndpoint(string HostName, int Port, string VirtualHost, string UserName, string Password)
{
    public const int DefaultPort = 5672;

    public string Display => $"rabbitmq://{Uri.EscapeDataString(UserName)}@{HostName}:{Port}/{(VirtualHost == "/" ? "" : Uri.EscapeDataString(VirtualHost))}";

    /// <exception cref="FormatException">Not a rabbitmq:// (amqp://, rabbit://) URL with a host; the message names the setting.</exception>
    public static RabbitMqEndpoint Parse(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("rabbitmq" or "amqp" or "rabbit") || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException($"Invalid {RabbitMqOptions.SettingName} '{Redact(url)}': expected rabbitmq://user:pass@host:port/vhost");
        }
        var user = "guest";
        var password = "guest";
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            password = colon < 0 ? "" : Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }
        // The path's one segment is the vhost, %2F-escaped when it is "/" spelled out (oslo and the AMQP URI spec).
        var path = uri.AbsolutePath.TrimStart('/');
        var vhost = path.Length == 0 ? "/" : Uri.UnescapeDataString(path);
        var host = uri.Host.Trim('[', ']');
        return new RabbitMqEndpoint(host, uri.IsDefaultPort || uri.Port < 0 ? DefaultPort : uri.Port, vhost, user, password);
    }

    /// <summary>The URL with any password blanked, for an error about a URL that did not parse.</summary>
    private static string Redact(string url)
    {
        var at = url.LastIndexOf('@');
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (at < 0 || scheme < 0 || at < scheme)
        {
            return url;
        }
        var userInfo = url[(scheme + 3)..at];
        var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? url : $"{url[..(scheme + 3)]}{userInfo[..colon]}:***{url[at..]}";
    }
}
