using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.Core.Errors;
using Ferry.Core.Identity;

namespace Ferry.Core.Volumes;

/// <summary>
/// The compute agent's client of the block storage service (Cinder v3, the attachments API at microversion 3.44 as Nova's
/// volume module uses it): a host gives an attachment its connector and gets the connection it opens, completes it once
/// the guest has the disk, and deletes it when the host lets go. The endpoint is configured or taken from the token's
/// catalog (type <c>volumev3</c>); a Cinder error is rethrown as a <see cref="CinderException"/> of the same status.
/// </summary>
public sealed class VolumeHttpClient
{
    /// <summary>The microversion of the attachments API with <c>os-complete</c>.</summary>
    public const string Microversion = "3.44";

    private static readonly Dictionary<string, string> s_headers = new() { ["OpenStack-API-Version"] = "volume " + Microversion };

    private readonly ServiceApiCaller _api;

    /// <summary>A fixed token (noauth2) and a known endpoint.</summary>
    public VolumeHttpClient(HttpClient httpClient, Uri endpoint, string? authToken)
    {
        _api = new ServiceApiCaller(httpClient, null, authToken, endpoint, "volumev3", Failure, s_headers);
    }

    /// <summary>As a service: tokens from <paramref name="session"/>, the endpoint configured or from its catalog.</summary>
    public VolumeHttpClient(HttpClient httpClient, KeystoneSession session, Uri? endpoint = null)
    {
        _api = new ServiceApiCaller(httpClient, session, null, endpoint, "volumev3", Failure, s_headers);
    }

    /// <summary>Reserves the volume for the instance (no connector yet): Nova's attachment_create.</summary>
    public async Task<string> CreateAttachmentAsync(string volumeId, string instanceUuid, VolumeConnector? connector, CancellationToken cancellationToken)
    {
        var body = new JsonObject { ["attachment"] = new JsonObject { ["volume_uuid"] = volumeId, ["instance_uuid"] = instanceUuid, ["connector"] = Connector(connector) } };
        var reply = await SendAsync(HttpMethod.Post, "attachments", body, cancellationToken);
        return reply?["attachment"]?["id"]?.GetValue<string>() ?? throw new FerryException("The volume service's attachment has no id.", 502);
    }

    /// <summary>Gives the attachment this host's connector and returns how the host opens the volume (attachment_update).</summary>
    public async Task<VolumeConnectionInfo> ConnectAsync(string attachmentId, VolumeConnector connector, CancellationToken cancellationToken)
    {
        var body = new JsonObject { ["attachment"] = new JsonObject { ["connector"] = Connector(connector) } };
        var reply = await SendAsync(HttpMethod.Put, $"attachments/{Uri.EscapeDataString(attachmentId)}", body, cancellationToken);
        return ConnectionInfo(reply?["attachment"]?["connection_info"] as JsonObject)
            ?? throw new FerryException($"The volume service gave attachment {attachmentId} no connection.", 502);
    }

    /// <summary>The guest has the disk: the attachment is attached and the volume in-use (attachment_complete).</summary>
    public Task CompleteAsync(string attachmentId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, $"attachments/{Uri.EscapeDataString(attachmentId)}/action", new JsonObject { ["os-complete"] = null }, cancellationToken);

    /// <summary>Deletes the attachment; one already gone is fine (attachment_delete ignores a 404 too).</summary>
    public async Task DeleteAttachmentAsync(string attachmentId, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, $"attachments/{Uri.EscapeDataString(attachmentId)}", null, cancellationToken);
        }
        catch (CinderException ex) when (ex.HttpStatus == 404)
        {
        }
    }

    /// <summary>A detach that failed: the volume goes back from detaching to in-use (os-roll_detaching).</summary>
    public Task RollDetachingAsync(string volumeId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, $"volumes/{Uri.EscapeDataString(volumeId)}/action", new JsonObject { ["os-roll_detaching"] = null }, cancellationToken);

    /// <summary>The ids of the instance's attachments (any host, any status).</summary>
    public async Task<List<string>> ListAttachmentIdsAsync(string instanceUuid, CancellationToken cancellationToken)
    {
        var reply = await SendAsync(HttpMethod.Get, $"attachments?instance_id={Uri.EscapeDataString(instanceUuid)}", null, cancellationToken);
        return [.. (reply?["attachments"] as JsonArray ?? []).Select(a => a?["id"]?.GetValue<string>()).OfType<string>()];
    }

    /// <summary>The volume's status, or null when it does not exist.</summary>
    public async Task<string?> GetVolumeStatusAsync(string volumeId, CancellationToken cancellationToken)
    {
        try
        {
            return (await SendAsync(HttpMethod.Get, $"volumes/{Uri.EscapeDataString(volumeId)}", null, cancellationToken))?["volume"]?["status"]?.GetValue<string>();
        }
        catch (CinderException ex) when (ex.HttpStatus == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// Creates a volume for a server's build (Nova's _prep_block_device): from the image when one is named, blank otherwise,
    /// named as Nova names them (no name, <c>&lt;server&gt;-blank-vol</c> for a blank one). Returns its id; the volume may still
    /// be creating (<see cref="WaitUntilAvailableAsync"/>).
    /// </summary>
    public async Task<string> CreateVolumeAsync(int sizeGb, string? imageId, string instanceUuid, CancellationToken cancellationToken)
    {
        var volume = new JsonObject { ["size"] = sizeGb, ["name"] = imageId is null ? $"{instanceUuid}-blank-vol" : "" };
        if (imageId is not null)
        {
            volume["imageRef"] = imageId;
        }
        var reply = await SendAsync(HttpMethod.Post, "volumes", new JsonObject { ["volume"] = volume }, cancellationToken);
        return reply?["volume"]?["id"]?.GetValue<string>() ?? throw new FerryException("The volume service's new volume has no id.", 502);
    }

    /// <summary>The volume, or null when it does not exist.</summary>
    public async Task<VolumeSummary?> GetVolumeAsync(string volumeId, CancellationToken cancellationToken)
    {
        try
        {
            var volume = (await SendAsync(HttpMethod.Get, $"volumes/{Uri.EscapeDataString(volumeId)}", null, cancellationToken))?["volume"];
            return volume is null ? null : new VolumeSummary(
                volumeId,
                volume["status"]?.GetValue<string>() ?? "",
                volume["size"]?.GetValue<int>() ?? 0,
                volume["volume_image_metadata"]?["image_id"]?.GetValue<string>());
        }
        catch (CinderException ex) when (ex.HttpStatus == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// Waits for a volume being made to become available (Nova's _await_block_device_map_created), polling every
    /// <paramref name="interval"/> up to <paramref name="attempts"/> times; an <c>error</c> volume or the time running out fails.
    /// </summary>
    public async Task<VolumeSummary> WaitUntilAvailableAsync(string volumeId, TimeSpan interval, int attempts, TimeProvider time, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var volume = await GetVolumeAsync(volumeId, cancellationToken)
                ?? throw new FerryException($"Volume {volumeId} did not finish being created: it is gone.", 500);
            if (volume.Status == "available")
            {
                return volume;
            }
            if (volume.Status == "error" || attempt >= attempts)
            {
                throw new FerryException($"Volume {volumeId} did not finish being created even after we waited {(interval * attempt).TotalSeconds:0} seconds or {attempt} attempts. And its status is {volume.Status}.", 500);
            }
            await Task.Delay(interval, time, cancellationToken);
        }
    }

    /// <summary>Deletes the volume (a server's delete_on_termination); one already gone is fine.</summary>
    public async Task DeleteVolumeAsync(string volumeId, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(HttpMethod.Delete, $"volumes/{Uri.EscapeDataString(volumeId)}", null, cancellationToken);
        }
        catch (CinderException ex) when (ex.HttpStatus == 404)
        {
        }
    }

    private static JsonObject? Connector(VolumeConnector? connector) => connector is null ? null : new JsonObject
    {
        ["host"] = connector.Host,
        ["ip"] = connector.Ip,
        ["platform"] = connector.Platform,
        ["os_type"] = connector.OsType,
        ["multipath"] = connector.Multipath,
        ["mountpoint"] = connector.Mountpoint,
    };

    /// <summary>Cinder's connection_info, flat as it stores it or with the driver's keys under <c>data</c>.</summary>
    public static VolumeConnectionInfo? ConnectionInfo(JsonObject? info)
    {
        if (info is null || info.Count == 0)
        {
            return null;
        }
        var data = info["data"] as JsonObject ?? info;
        var port = data["port"] switch
        {
            JsonValue v when v.TryGetValue<int>(out var n) => n,
            JsonValue v when int.TryParse(v.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
            _ => 0,
        };
        return new VolumeConnectionInfo
        {
            DriverVolumeType = info["driver_volume_type"]?.GetValue<string>() ?? VolumeConnectionInfo.NbdType,
            Host = data["host"]?.GetValue<string>() ?? "",
            Port = port,
            Export = data["export"]?.GetValue<string>() ?? "",
            AccessMode = (info["access_mode"] ?? data["access_mode"])?.GetValue<string>() ?? "rw",
        };
    }

    private Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken cancellationToken) =>
        _api.SendAsync(method, path, body, cancellationToken);

    /// <summary>Cinder's error (<c>{"badRequest": {"code", "message"}}</c>) as a CinderException; anything else as a 502 naming the call.</summary>
    private static FerryException Failure(HttpStatusCode status, string text, HttpMethod method, string path)
    {
        try
        {
            if (JsonNode.Parse(text) is JsonObject { Count: 1 } error && error.First().Value is JsonObject fault && fault["message"]?.GetValue<string>() is { } message)
            {
                return new CinderException((int)status, message);
            }
        }
        catch (JsonException)
        {
        }
        return new FerryException(string.Create(CultureInfo.InvariantCulture,
            $"The volume service answered {(int)status} to {method} {path}: {(text.Length > 300 ? text[..300] : text)}"), 502);
    }
}
