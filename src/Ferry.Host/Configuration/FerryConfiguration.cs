using System.Collections;
using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Configuration.Memory;

namespace Ferry.Host.Configuration;

/// <summary>What a role's settings came to: the options, or the one-line errors that stop it (exit 2).</summary>
public sealed record FerryLoadResult(FerryHostOptions Options, IReadOnlyList<string> Errors);

/// <summary>
/// Ferry's settings the .NET way: a <see cref="ConfigurationManager"/> over, in rising precedence, the JSON file
/// (<c>--config FILE</c>, else <see cref="FerrySettings.DefaultConfigFile"/> when it exists), the <c>FERRY_</c>
/// environment variables and the flags given. Each setting's effective value is checked where it came from, so a bad
/// value names its setting and its source (flag, environment variable, file) in one line.
/// </summary>
public static class FerryConfiguration
{
    /// <summary>The environment variable that names the configuration file when <c>--config</c> does not.</summary>
    public const string ConfigVariable = FerrySettings.EnvironmentPrefix + "CONFIG";

    /// <summary>
    /// Loads the settings of the role <paramref name="commandLine"/> runs. <paramref name="environment"/> is the process
    /// environment (tests pass their own); <paramref name="defaultConfigFile"/> is read when present and no file is named.
    /// </summary>
    public static FerryLoadResult Load(ParseResult commandLine, IDictionary environment, string? defaultConfigFile = FerrySettings.DefaultConfigFile)
    {
        var role = FerryCommandLine.RoleOf(commandLine);
        var errors = new List<string>();
        var manager = new ConfigurationManager();

        // The file: --config, else FERRY_CONFIG, else the default one if it exists.
        var configFile = FerryCommandLine.ConfigFile(commandLine);
        var configOrigin = FerryCommandLine.ConfigFlag;
        if (configFile is null && environment[ConfigVariable] is string fromEnvironment && fromEnvironment.Length > 0)
        {
            (configFile, configOrigin) = (fromEnvironment, ConfigVariable);
        }
        if (configFile is not null && !File.Exists(configFile))
        {
            errors.Add($"{configOrigin}: the configuration file '{configFile}' does not exist");
            configFile = null;
        }
        configFile ??= defaultConfigFile is not null && File.Exists(defaultConfigFile) ? defaultConfigFile : null;
        if (configFile is not null)
        {
            var full = Path.GetFullPath(configFile);
            try
            {
                manager.AddJsonFile(full, optional: false, reloadOnChange: false);
            }
            catch (InvalidDataException ex)
            {
                errors.Add($"{full}: not a valid configuration file: {FirstLine(ex.InnerException?.Message ?? ex.Message)}");
            }
            catch (Exception ex) when (ex is JsonException or FormatException or IOException or UnauthorizedAccessException)
            {
                errors.Add($"{full}: cannot read the configuration file: {FirstLine(ex.Message)}");
            }
        }

        // The environment: FERRY_HOSTS → hosts, FERRY_API__COMPUTEPORT → api:computePort. Variables that name no
        // setting (FERRY_CONFIG, test hooks) are not settings and are left alone.
        var fromEnvironmentVariables = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is string name && name.StartsWith(FerrySettings.EnvironmentPrefix, StringComparison.OrdinalIgnoreCase)
                && FerrySettings.Find(name[FerrySettings.EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal)) is { } setting)
            {
                fromEnvironmentVariables[setting.Key] = entry.Value as string ?? "";
            }
        }
        ((IConfigurationBuilder)manager).Add(new MemoryConfigurationSource { InitialData = fromEnvironmentVariables });
        var environmentProvider = ((IConfigurationRoot)manager).Providers.Last();

        var flags = FerryCommandLine.GivenFlags(commandLine);
        ((IConfigurationBuilder)manager).Add(new MemoryConfigurationSource { InitialData = flags.Select(f => KeyValuePair.Create(f.Key, (string?)f.Value)) });
        var flagProvider = ((IConfigurationRoot)manager).Providers.Last();

        var fileProvider = ((IConfigurationRoot)manager).Providers.OfType<JsonConfigurationProvider>().FirstOrDefault();
        if (fileProvider is not null)
        {
            foreach (var key in LeafKeys(fileProvider, null))
            {
                // A list setting's JSON array comes as key:0, key:1…
                var parent = key.LastIndexOf(':') is var colon and > 0 && int.TryParse(key[(colon + 1)..], out _) ? key[..colon] : null;
                if (FerrySettings.Find(key) is null && !(parent is not null && FerrySettings.Find(parent) is { IsList: true }))
                {
                    errors.Add($"{configFile}: '{key}' is not a Ferry setting");
                }
            }
        }

        var options = new FerryHostOptions();
        foreach (var setting in FerrySettings.All)
        {
            var value = manager[setting.Key];
            if (value is null && setting.IsList && manager.GetSection(setting.Key).GetChildren().ToList() is { Count: > 0 } items)
            {
                value = string.Join(',', items.Select(i => i.Value));
            }
            // A setting no source gives takes the default its help shows (the command line's, e.g. auth keystone).
            if (value is null)
            {
                if (setting.Default is { } defaultValue)
                {
                    setting.Apply(options, defaultValue);
                }
                continue;
            }
            var provider = ((IConfigurationRoot)manager).Providers.LastOrDefault(p => p.TryGet(setting.Key, out _)) ?? fileProvider;
            if (setting.Validate(value) is { } error)
            {
                var origin = ReferenceEquals(provider, flagProvider) ? setting.Flag
                    : ReferenceEquals(provider, environmentProvider) ? $"{setting.EnvironmentVariable} (environment variable)"
                    : $"{setting.Key} (in {configFile})";
                errors.Add($"{origin}: {error}");
                continue;
            }
            setting.Apply(options, value);
        }
        if (errors.Count == 0)
        {
            errors.AddRange(Requirements(role, options));
        }
        return new FerryLoadResult(options, errors);
    }

    /// <summary>What a role needs that the settings do not give, one line each.</summary>
    public static IReadOnlyList<string> Requirements(FerryRoles role, FerryHostOptions options)
    {
        var errors = new List<string>();
        var name = role switch
        {
            FerryRoles.Api => "ferry api",
            FerryRoles.Conductor => "ferry conductor",
            FerryRoles.Scheduler => "ferry scheduler",
            FerryRoles.Compute => "ferry compute",
            _ => null,
        };
        // Alone, the api role needs the bus only for the compute API (placement, identity and images answer by themselves).
        if (name is not null && options.UsesInProcessTransport && (role != FerryRoles.Api || options.Serves("compute")))
        {
            // A role's calls would reach no one: the in-process bus ends at this process.
            errors.Add($"{name} needs a shared transport: set transport ({FerrySettings.EnvironmentPrefix}TRANSPORT or --transport) to rabbitmq://…");
        }
        if (role == FerryRoles.Compute && options.ComputeHost is null)
        {
            errors.Add($"ferry compute needs a host name: set compute:host ({FerrySettings.EnvironmentPrefix}COMPUTE__HOST or --host)");
        }
        // A QEMU host binds its migration and NBD ports on its address and owns the guests' processes: one per process.
        if (role == FerryRoles.Compute && options.ComputeHosts.Count > 1 && options.Driver == "qemu")
        {
            errors.Add($"--host: the qemu driver serves one host per process, not {options.ComputeHosts.Count}: give one name, or use the fake driver");
        }
        if (role == FerryRoles.Distributed && options.HostsPerCompute > 1 && options.Driver == "qemu")
        {
            errors.Add($"--hosts-per-compute: the qemu driver serves one host per process, not {options.HostsPerCompute}: leave it at 1, or use the fake driver");
        }
        return errors;
    }

    private static IEnumerable<string> LeafKeys(IConfigurationProvider provider, string? parent)
    {
        foreach (var child in provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            var key = parent is null ? child : $"{parent}:{child}";
            var children = provider.GetChildKeys([], key).Any();
            if (!children)
            {
                yield return key;
            }
            else
            {
                foreach (var leaf in LeafKeys(provider, key))
                {
                    yield return leaf;
                }
            }
        }
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
