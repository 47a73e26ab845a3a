namespace Ferry.ControlPlane;

/// <summary>Options shared by the API, conductor and scheduler (Nova's [DEFAULT] and [scheduler] knobs).</summary>
public sealed class ControlPlaneOptions
{
    /// <summary>A service whose last heartbeat is older than this is down (Nova: service_down_time, 60 s).</summary>
    public TimeSpan ServiceDownTime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The image API's root, for the "alternate" link of image views (Nova's glance api_servers); null = port 9292 of the request's host.</summary>
    public string? ImageApiUrl { get; set; }

    /// <summary>Nova's allow_resize_to_same_host (false).</summary>
    public bool AllowResizeToSameHost { get; set; }

    /// <summary>Live-migration host retries in the conductor; -1 = until the scheduler runs out (Nova default).</summary>
    public int MigrateMaxRetries { get; set; } = -1;

    /// <summary>Hosts tried for a cold migration or resize: the selected one plus alternates (Nova: [scheduler] max_attempts = 3).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// A build no compute has acknowledged after this long goes to ERROR (Nova: instance_build_timeout, where 0,
    /// its default, disables the check; here zero disables it too, but the default is on so that a build cast to
    /// a host that is gone does not stay BUILD for good).
    /// </summary>
    public TimeSpan InstanceBuildTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the conductor looks for timed-out builds (Nova's periodic task spacing, 60 s).</summary>
    public TimeSpan BuildTimeoutCheckInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A move (live migration, cold migration or resize, evacuation) whose request no conductor took after this long
    /// is ended: the API that accepted it died before its cast reached the bus (<see cref="Conductor.LostMoveCheck"/>;
    /// checked every <see cref="BuildTimeoutCheckInterval"/>). Zero disables the check.
    /// </summary>
    public TimeSpan MoveStartTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The most items one page of a compute API list holds (Nova's [api] max_limit, 1000).</summary>
    public int MaxLimit { get; set; } = 1000;

    /// <summary>Return an admin password from evacuate before microversion 2.14 ([api] enable_instance_password).</summary>
    public bool EnableInstancePassword { get; set; } = true;
}
