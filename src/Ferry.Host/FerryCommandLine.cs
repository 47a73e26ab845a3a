using System.Collections;
using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using Ferry.Host.Configuration;

namespace Ferry.Host;

/// <summary>
/// The command line of the <c>ferry</c> program (System.CommandLine): one subcommand per role, each with the flags of
/// its settings (<see cref="FerrySettings"/>) and <c>--config</c>. A bad flag value is one line that names the flag;
/// values from the file and the environment get the same check at binding (<see cref="FerryConfiguration"/>).
/// The help of <c>all-in-one</c> is also kept beside this file (ferry-up-help.txt) so that `./ferry up --help` needs
/// no build; a test keeps the two equal.
/// </summary>
public static class FerryCommandLine
{
    /// <summary>The width the help is rendered at, for the terminal and for the kept copy alike.</summary>
    public const int HelpWidth = 110;

    public const string ConfigFlag = "--config";

    /// <summary>Each role's subcommand: its words after <c>ferry</c>, what it runs, and the roles whose settings it takes.</summary>
    private static readonly (string[] Words, FerryRoles Role, string Description)[] s_roles =
    [
        (["all-in-one"], FerryRoles.AllInOne,
            "Runs an all-in-one Ferry on 127.0.0.1: the compute, placement, identity and image APIs, the conductor and scheduler, and N compute hosts."),
        (["api"], FerryRoles.Api, "Runs the API services: the compute, placement, identity and image APIs (or the subset --apis names)."),
        (["conductor"], FerryRoles.Conductor, "Runs the conductor: the conductor RPC server, the build timeout check and its service heartbeat."),
        (["scheduler"], FerryRoles.Scheduler, "Runs the scheduler: the scheduler RPC server and its service heartbeat."),
        (["compute"], FerryRoles.Compute, "Runs one compute agent (--host NAME): its virt driver and compute manager; it never opens the database."),
        (["db", "sync"], FerryRoles.DbSync, "Brings the database schema up to date and exits (Nova's nova-manage db sync)."),
        (["distributed"], FerryRoles.Distributed,
            "Runs Ferry as Nova runs: PostgreSQL and RabbitMQ on 127.0.0.1 under the data directory, then each role as its own processes " +
            "(--replicas of the api, conductor and scheduler, one compute per host). Ctrl-C stops them all."),
    ];

    private static readonly Lazy<RootCommand> s_root = new(BuildRoot);

    /// <summary>The whole program's command: <c>ferry &lt;role&gt; [options]</c>.</summary>
    public static RootCommand Root => s_root.Value;

    /// <summary>The all-in-one's command (what `./ferry up` runs).</summary>
    public static Command Command => CommandOf(FerryRoles.AllInOne);

    /// <summary>The subcommand of <paramref name="role"/>.</summary>
    public static Command CommandOf(FerryRoles role)
    {
        var words = s_roles.First(r => r.Role == role).Words;
        Command command = Root;
        foreach (var word in words)
        {
            command = command.Subcommands.First(c => c.Name == word);
        }
        return command;
    }

    /// <summary>The words that start <paramref name="role"/>'s command line (<c>all-in-one</c>, <c>db sync</c>…).</summary>
    public static IReadOnlyList<string> WordsOf(FerryRoles role) => s_roles.First(r => r.Role == role).Words;

    private static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "Ferry: an OpenStack Nova-compatible compute control plane. Each role runs alone or all together (all-in-one). Settings come, in rising " +
            $"precedence, from {FerrySettings.DefaultConfigFile} (or --config FILE), environment variables ({FerrySettings.EnvironmentPrefix} + the key, " +
            "__ between sections: FERRY_HOSTS, FERRY_API__COMPUTEPORT) and flags.");
        RemoveVersion(root);
        foreach (var (words, role, description) in s_roles)
        {
            var command = new Command(words[^1], description);
            command.Options.Add(new Option<string>(ConfigFlag)
            {
                Description = $"A JSON configuration file (default: {FerrySettings.DefaultConfigFile} when it exists), below the environment and flags.",
                HelpName = "FILE",
            });
            foreach (var setting in FerrySettings.Of(role))
            {
                command.Options.Add(OptionOf(setting));
            }
            Command parent = root;
            foreach (var word in words[..^1])
            {
                var group = parent.Subcommands.FirstOrDefault(c => c.Name == word);
                if (group is null)
                {
                    group = new Command(word, "Database commands.");
                    parent.Subcommands.Add(group);
                }
                parent = group;
            }
            parent.Subcommands.Add(command);
        }
        return root;
    }

    private static void RemoveVersion(Command command)
    {
        // Ferry has no release version to print: drop System.CommandLine's --version.
        foreach (var version in command.Options.OfType<VersionOption>().ToList())
        {
            command.Options.Remove(version);
        }
    }

    private static Option OptionOf(FerrySetting setting)
    {
        if (setting.IsSwitch)
        {
            return new Option<bool>(setting.Flag) { Description = setting.Description, Arity = ArgumentArity.Zero };
        }
        var option = new Option<string>(setting.Flag) { Description = setting.Description, HelpName = setting.HelpName };
        if (setting.Default is { } defaultValue)
        {
            option.DefaultValueFactory = _ => defaultValue;
        }
        option.Validators.Add(result =>
        {
            if (result.Implicit)
            {
                return;
            }
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (setting.Validate(text) is { } error)
            {
                result.AddError($"{setting.Flag}: {error}");
            }
        });
        return option;
    }

    /// <summary>Parses a whole <c>ferry</c> command line; the errors, if any, are one line each and name the flag.</summary>
    public static ParseResult ParseProgram(IReadOnlyList<string> args) => Root.Parse(args);

    /// <summary>Parses an all-in-one command line (what follows `./ferry up`).</summary>
    public static ParseResult Parse(IReadOnlyList<string> args) => Root.Parse([.. WordsOf(FerryRoles.AllInOne), .. args]);

    /// <summary>True when the command line asks for the help (-h, --help, -?).</summary>
    public static bool WantsHelp(ParseResult result) => result.Errors.Count == 0 && result.Action is HelpAction;

    /// <summary>The role a parsed command line runs; <see cref="FerryRoles.None"/> when it names none (<c>ferry</c>, <c>ferry db</c>).</summary>
    public static FerryRoles RoleOf(ParseResult result)
    {
        var command = result.CommandResult.Command;
        foreach (var (_, role, _) in s_roles)
        {
            if (ReferenceEquals(CommandOf(role), command))
            {
                return role;
            }
        }
        return FerryRoles.None;
    }

    /// <summary>The flags given on the command line (not their defaults), by configuration key, as text.</summary>
    public static IReadOnlyDictionary<string, string> GivenFlags(ParseResult result)
    {
        var flags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var role = RoleOf(result);
        if (role == FerryRoles.None)
        {
            return flags;
        }
        foreach (var option in CommandOf(role).Options)
        {
            if (FerrySettings.All.FirstOrDefault(s => s.Flag == option.Name) is not { } setting || result.GetResult(option) is not { Implicit: false } given)
            {
                continue;
            }
            flags[setting.Key] = setting.IsSwitch ? "true" : given.Tokens.Count == 1 ? given.Tokens[0].Value : "";
        }
        return flags;
    }

    /// <summary>The <c>--config</c> file the command line names, or null.</summary>
    public static string? ConfigFile(ParseResult result) =>
        RoleOf(result) is var role && role != FerryRoles.None && CommandOf(role).Options.First(o => o.Name == ConfigFlag) is Option<string> config
            ? result.GetValue(config)
            : null;

    /// <summary>
    /// The options a parse without errors stands for, from its flags alone (no file, no environment): what tests and
    /// <see cref="FerryHostOptions.Parse"/> use.
    /// </summary>
    public static FerryHostOptions Bind(ParseResult result)
    {
        if (result.Errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, result.Errors.Select(e => e.Message)));
        }
        var loaded = FerryConfiguration.Load(result, environment: new Hashtable(), defaultConfigFile: null);
        return loaded.Errors.Count == 0 ? loaded.Options : throw new ArgumentException(string.Join(Environment.NewLine, loaded.Errors));
    }

    /// <summary>The help of `./ferry up` (the all-in-one), rendered at <see cref="HelpWidth"/> columns whatever the terminal.</summary>
    public static string HelpText() => HelpText(FerryRoles.AllInOne);

    /// <summary>The help of the command a parsed command line names (a role, the <c>db</c> group, or the program).</summary>
    public static string HelpText(ParseResult result)
    {
        var role = RoleOf(result);
        return role != FerryRoles.None || result.CommandResult.Command is RootCommand
            ? HelpText(role)
            : HelpText(FerryRoles.None, [result.CommandResult.Command.Name]);
    }

    /// <summary>The help of one role's command (or of the program, for <see cref="FerryRoles.None"/>).</summary>
    public static string HelpText(FerryRoles role) => HelpText(role, role == FerryRoles.None ? [] : [.. WordsOf(role)]);

    private static string HelpText(FerryRoles role, string[] words)
    {
        using var output = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        var help = Root.Parse([.. words, "--help"]);
        if (help.Action is HelpAction action)
        {
            action.MaxWidth = HelpWidth;
        }
        help.Invoke(new InvocationConfiguration { Output = output });
        // The usage line names the running executable (ferry, or a test host): name the command an operator types.
        var lines = output.ToString().Split('\n');
        var usage = Array.IndexOf(lines, "Usage:");
        if (usage >= 0 && usage + 1 < lines.Length)
        {
            lines[usage + 1] = role switch
            {
                FerryRoles.AllInOne => "  ./ferry up [options]",
                FerryRoles.None => $"  ferry {string.Join(' ', [.. words, "[command]"])} [options]",
                _ => $"  ferry {string.Join(' ', words)} [options]",
            };
        }
        return string.Join('\n', lines.Select(line => line.TrimEnd()));
    }
}
