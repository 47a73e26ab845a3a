using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Globalization;
using Ferry.Host.Messaging;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Host;

/// <summary>
/// The command line of `./ferry up` (System.CommandLine): every flag with its meaning, its default and its
/// validation, and the binding to <see cref="FerryHostOptions"/>. A bad value is one line that names the flag.
/// The help text is also kept beside this file (ferry-up-help.txt) so that `./ferry up --help` needs no build;
/// a test keeps the two equal.
/// </summary>
public static class FerryCommandLine
{
    /// <summary>The width the help is rendered at, for the terminal and for the kept copy alike.</summary>
    public const int HelpWidth = 110;

    private static readonly FerryHostOptions s_defaults = new();

    private static readonly Option<string> s_driver = Choice("--driver", "The virt driver of every compute host: fake (simulated guests) or qemu (a QEMU process per guest).", "fake", ["fake", "qemu"]);
    private static readonly Option<int> s_hosts = Int("--hosts", "Number of compute hosts, named compute1..computeN.", s_defaults.Hosts, 1, 1000, "N");
    private static readonly Option<bool> s_sharedStorage = Flag("--shared-storage", "All hosts share one instances directory (var/instances/shared) instead of one each.");
    private static readonly Option<string> s_dataDirectory = Text("--data-dir", "Where the database, images, instances, logs and openrc files live.", "var", "DIR");
    private static readonly Option<int> s_computePort = Port("--compute-port", "Port of the compute API (Nova v2.1).", s_defaults.ComputeApiPort);
    private static readonly Option<int> s_placementPort = Port("--placement-port", "Port of the placement API.", s_defaults.PlacementPort);
    private static readonly Option<int> s_identityPort = Port("--identity-port", "Port of the identity API (Keystone v3 subset; keystone auth only).", s_defaults.IdentityPort);
    private static readonly Option<int> s_imagePort = Port("--image-port", "Port of the image API (Glance v2 subset).", s_defaults.ImagePort);
    private static readonly Option<string> s_auth = Choice("--auth", "keystone (tokens from the identity API) or noauth2 (X-Auth-Token: user:project, Nova's test convention).", "keystone", ["keystone", "noauth2"]);
    private static readonly Option<double> s_tokenLifetime = Seconds("--token-lifetime", "Lifetime of an issued token, in seconds.", s_defaults.TokenLifetime.TotalSeconds, min: 1);
    private static readonly Option<int> s_lockoutFailureAttempts = Int("--lockout-failure-attempts",
        "Keystone's lockout_failure_attempts: wrong passwords in a row before an account is locked (0: never).", s_defaults.LockoutFailureAttempts, 0, 1000, "N");
    private static readonly Option<double> s_lockoutDuration = Seconds("--lockout-duration", "Keystone's lockout_duration: seconds a locked account stays locked after its last failure.",
        s_defaults.LockoutDuration.TotalSeconds, min: 1);
    private static readonly Option<long> s_imageSizeCap = Long("--image-size-cap", "Glance's image_size_cap: the largest image upload, in bytes.", s_defaults.ImageSizeCap, 1, "BYTES");
    private static readonly Option<string> s_logLevel = Choice("--log-level",
        "Level of Ferry's own log lines on the console and in <data dir>/log/ferry-<utc>.log: trace, debug, information, warning, error, " +
        "critical or none. Framework categories (ASP.NET Core requests…) log warnings and above.",
        "information", ["trace", "debug", "information", "warning", "error", "critical", "none"], "LEVEL");
    private static readonly Option<string> s_testGuestKernel = Text("--test-guest-kernel", "The test guest kernel QEMU boots for the image ferry-test-guest (built by tools/test-guest/build.sh).",
        s_defaults.TestGuestKernelPath, "FILE");
    private static readonly Option<bool> s_killGuestsOnStop = Flag("--kill-guests-on-stop", "End every guest Ferry started when Ferry stops (default: QEMU guests keep running and are re-attached at the next start).");
    private static readonly Option<long> s_lmBandwidth = Long("--lm-bandwidth", "Live-migration bandwidth limit in MiB/s (0: no limit).", s_defaults.LiveMigrationBandwidthMiBps, 0, "MIBPS");
    private static readonly Option<bool> s_lmPermitPostCopy = Flag("--lm-permit-post-copy", "Let a live migration switch to post-copy when it does not converge.");
    private static readonly Option<bool> s_lmPermitAutoConverge = Flag("--lm-permit-auto-converge", "Let QEMU throttle the guest's CPUs when a live migration does not converge.");
    private static readonly Option<int> s_lmCompletionTimeout = Int("--lm-completion-timeout", "Seconds per GiB of guest memory before the timeout action is taken (0: never).",
        s_defaults.LiveMigrationCompletionTimeoutSecondsPerGiB, 0, int.MaxValue, "S");
    private static readonly Option<string> s_lmTimeoutAction = Choice("--lm-timeout-action", "What a live migration past its completion timeout does: abort or force_complete.", "abort", ["abort", "force_complete"]);
    private static readonly Option<int> s_lmPostCopyRecoveryAttempts = Int("--lm-postcopy-recovery-attempts", "Resumes of a broken post-copy stream in a row before the instance goes to ERROR.",
        s_defaults.LiveMigrationPostCopyRecoveryAttempts, 0, 1000, "N");
    private static readonly Option<int> s_lmPostCopyStall = Int("--lm-postcopy-stall", "Seconds a post-copy stream may move nothing before it counts as broken.",
        s_defaults.LiveMigrationPostCopyStallSeconds, 1, 86400, "S");
    private static readonly Option<int> s_lmParallelConnections = Int("--lm-parallel-connections", "Memory streams (multifd) of a live migration; 1 whenever post-copy is permitted.",
        s_defaults.LiveMigrationParallelConnections, 1, 256, "N");
    private static readonly Option<int> s_maxConcurrentLiveMigrations = Int("--max-concurrent-live-migrations", "Outgoing live migrations per host at once (0: no limit).",
        s_defaults.MaxConcurrentLiveMigrations, 0, 1000, "N");
    private static readonly Option<double> s_timeScale = Seconds("--time-scale", "Fake driver: real seconds per simulated second (0: moves take no real time).", s_defaults.FakeTimeScale, min: 0, helpName: "X");
    private static readonly Option<double> s_reportInterval = Seconds("--report-interval", "Seconds between service heartbeats.", s_defaults.ReportInterval.TotalSeconds, min: 0.01);
    private static readonly Option<double> s_serviceDownTime = Seconds("--service-down-time", "Seconds without a heartbeat after which a service counts as down.", s_defaults.ServiceDownTime.TotalSeconds, min: 0.01);

    private static readonly Option<string> s_transportUrl = TransportUrl();

    private static readonly Lazy<RootCommand> s_command = new(Build);

    /// <summary>The command with every option, in the order the help lists them (one instance: options are shared symbols).</summary>
    public static RootCommand Command => s_command.Value;

    private static RootCommand Build()
    {
        var command = new RootCommand("Runs an all-in-one Ferry on 127.0.0.1: the compute, placement, identity and image APIs, the conductor and scheduler, and N compute hosts.")
        {
            s_driver, s_hosts, s_sharedStorage, s_dataDirectory,
            s_computePort, s_placementPort, s_identityPort, s_imagePort,
            s_auth, s_tokenLifetime, s_lockoutFailureAttempts, s_lockoutDuration, s_imageSizeCap, s_logLevel,
            s_testGuestKernel, s_killGuestsOnStop,
            s_lmBandwidth, s_lmPermitPostCopy, s_lmPermitAutoConverge, s_lmCompletionTimeout, s_lmTimeoutAction,
            s_lmPostCopyRecoveryAttempts, s_lmPostCopyStall, s_lmParallelConnections, s_maxConcurrentLiveMigrations,
            s_timeScale, s_reportInterval, s_serviceDownTime, s_transportUrl,
        };
        // Ferry has no release version to print: drop System.CommandLine's --version.
        foreach (var version in command.Options.OfType<VersionOption>().ToList())
        {
            command.Options.Remove(version);
        }
        return command;
    }

    /// <summary>Parses <paramref name="args"/>; the errors, if any, are one line each and name the flag.</summary>
    public static ParseResult Parse(IReadOnlyList<string> args) => Command.Parse(args);

    /// <summary>True when the command line asks for the help (-h, --help, -?).</summary>
    public static bool WantsHelp(ParseResult result) => result.Errors.Count == 0 && result.Action is HelpAction;

    /// <summary>The options a parse without errors stands for.</summary>
    public static FerryHostOptions Bind(ParseResult result)
    {
        if (result.Errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, result.Errors.Select(e => e.Message)));
        }
        return new FerryHostOptions
        {
            Auth = result.GetValue(s_auth)!,
            Driver = result.GetValue(s_driver)!,
            Hosts = result.GetValue(s_hosts),
            SharedStorage = result.GetValue(s_sharedStorage),
            DataDirectory = result.GetValue(s_dataDirectory)!,
            ComputeApiPort = result.GetValue(s_computePort),
            PlacementPort = result.GetValue(s_placementPort),
            IdentityPort = result.GetValue(s_identityPort),
            ImagePort = result.GetValue(s_imagePort),
            TokenLifetime = TimeSpan.FromSeconds(result.GetValue(s_tokenLifetime)),
            LockoutFailureAttempts = result.GetValue(s_lockoutFailureAttempts),
            LockoutDuration = TimeSpan.FromSeconds(result.GetValue(s_lockoutDuration)),
            ImageSizeCap = result.GetValue(s_imageSizeCap),
            LogLevel = ParseLogLevel(result.GetValue(s_logLevel)!),
            TestGuestKernelPath = result.GetValue(s_testGuestKernel)!,
            KillGuestsOnStop = result.GetValue(s_killGuestsOnStop),
            LiveMigrationBandwidthMiBps = result.GetValue(s_lmBandwidth),
            LiveMigrationPermitPostCopy = result.GetValue(s_lmPermitPostCopy),
            LiveMigrationPermitAutoConverge = result.GetValue(s_lmPermitAutoConverge),
            LiveMigrationCompletionTimeoutSecondsPerGiB = result.GetValue(s_lmCompletionTimeout),
            LiveMigrationTimeoutAction = result.GetValue(s_lmTimeoutAction) == "force_complete" ? CompletionTimeoutAction.ForceComplete : CompletionTimeoutAction.Abort,
            LiveMigrationPostCopyRecoveryAttempts = result.GetValue(s_lmPostCopyRecoveryAttempts),
            LiveMigrationPostCopyStallSeconds = result.GetValue(s_lmPostCopyStall),
            LiveMigrationParallelConnections = result.GetValue(s_lmParallelConnections),
            MaxConcurrentLiveMigrations = result.GetValue(s_maxConcurrentLiveMigrations),
            FakeTimeScale = result.GetValue(s_timeScale),
            ReportInterval = TimeSpan.FromSeconds(result.GetValue(s_reportInterval)),
            ServiceDownTime = TimeSpan.FromSeconds(result.GetValue(s_serviceDownTime)),
            RabbitMq = result.GetValue(s_transportUrl) is { } url && url != "none" ? new RabbitMqOptions { Url = url } : null,
        };
    }

    /// <summary>The help of `./ferry up`, rendered at <see cref="HelpWidth"/> columns whatever the terminal.</summary>
    public static string HelpText()
    {
        using var output = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        var help = Command.Parse(["--help"]);
        if (help.Action is HelpAction action)
        {
            action.MaxWidth = HelpWidth;
        }
        help.Invoke(new InvocationConfiguration { Output = output });
        // The usage line names the running executable (ferry-host, or a test host): name the command an operator types.
        var lines = output.ToString().Split('\n');
        var usage = Array.IndexOf(lines, "Usage:");
        if (usage >= 0 && usage + 1 < lines.Length)
        {
            lines[usage + 1] = "  ./ferry up [options]";
        }
        return string.Join('\n', lines.Select(line => line.TrimEnd()));
    }

    private static LogLevel ParseLogLevel(string value) => Enum.Parse<LogLevel>(value, ignoreCase: true);

    private static Option<bool> Flag(string name, string description) => new(name) { Description = description, Arity = ArgumentArity.Zero };

    private static Option<string> Text(string name, string description, string defaultValue, string helpName) =>
        new(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue };

    private static Option<string> Choice(string name, string description, string defaultValue, string[] choices, string? helpName = null)
    {
        var option = new Option<string>(name) { Description = description, HelpName = helpName ?? string.Join('|', choices), DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (!choices.Contains(value, StringComparer.Ordinal))
            {
                result.AddError($"{name}: '{value}' is not one of {string.Join(", ", choices)}");
            }
        });
        return option;
    }

    private static Option<string> TransportUrl()
    {
        var option = Text("--transport-url", "The message bus: RabbitMQ at rabbitmq://user:pass@host:port/vhost (amqp:// too), or none for the in-process bus.",
            "none", "URL");
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (value != "none")
            {
                try
                {
                    RabbitMqEndpoint.Parse(value);
                }
                catch (FormatException ex)
                {
                    result.AddError(ex.Message);
                }
            }
        });
        return option;
    }

    private static Option<int> Port(string name, string description, int defaultValue) =>
        Int(name, description + " 0 picks a free port.", defaultValue, 0, 65535, "PORT");

    private static Option<int> Int(string name, string description, int defaultValue, int min, int max, string helpName) => new(name)
    {
        Description = description,
        HelpName = helpName,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result => ParseNumber(result, name, min, max, (string s, out int v) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v), "a whole number"),
    };

    private static Option<long> Long(string name, string description, long defaultValue, long min, string helpName) => new(name)
    {
        Description = description,
        HelpName = helpName,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result => ParseNumber(result, name, min, long.MaxValue, (string s, out long v) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v), "a whole number"),
    };

    private static Option<double> Seconds(string name, string description, double defaultValue, double min, string helpName = "S") => new(name)
    {
        Description = description,
        HelpName = helpName,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result => ParseNumber(result, name, min, 1e9,
            (string s, out double v) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v) && double.IsFinite(v), "a number"),
    };

    private delegate bool TryParse<T>(string text, out T value);

    private static T ParseNumber<T>(ArgumentResult result, string name, T min, T max, TryParse<T> tryParse, string what)
        where T : IComparable<T>
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (!tryParse(text, out var value))
        {
            result.AddError($"{name}: '{text}' is not {what}");
            return default!;
        }
        if (value.CompareTo(min) < 0 || value.CompareTo(max) > 0)
        {
            result.AddError(max.CompareTo(min) > 0 && !IsUnbounded(max)
                ? $"{name}: {text} is out of range ({Invariant(min)}..{Invariant(max)})"
                : $"{name}: {text} is below {Invariant(min)}");
        }
        return value;
    }

    private static string? Invariant<T>(T value) => Convert.ToString(value, CultureInfo.InvariantCulture);

    private static bool IsUnbounded<T>(T max) => max switch
    {
        int i => i == int.MaxValue,
        long l => l == long.MaxValue,
        double d => d >= 1e9,
        _ => false,
    };
}
