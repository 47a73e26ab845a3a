using System.Text;
using Ferry.ControlPlane.Persistence;

namespace Ferry.ControlPlane.Identity;

/// <summary>The <c>openrc</c> files devstack writes: <c>. var/admin-openrc.sh &amp;&amp; openstack server list</c>.</summary>
public static class OpenRc
{
    /// <summary>The variables, in the order written; the CLI tests pass the same set to the client.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Variables(string authUrl, string user, string password, string project, string region) =>
    [
        new("OS_AUTH_URL", authUrl),
        new("OS_AUTH_TYPE", "password"),
        new("OS_USERNAME", user),
        new("OS_PASSWORD", password),
        new("OS_PROJECT_NAME", project),
        new("OS_USER_DOMAIN_NAME", "Default"),
        new("OS_PROJECT_DOMAIN_NAME", "Default"),
        new("OS_IDENTITY_API_VERSION", "3"),
        new("OS_REGION_NAME", region),
        new("OS_INTERFACE", "public"),
        // OSC 6.0 defaults to compute 2.1, where `server create --nic none` is refused client-side (needs 2.37).
        new("OS_COMPUTE_API_VERSION", "2.latest"),
    ];

    public static string Render(IEnumerable<KeyValuePair<string, string>> variables)
    {
        var text = new StringBuilder("# Ferry credentials: . this file, then run openstack.\n");
        foreach (var (name, value) in variables)
        {
            text.Append("export ").Append(name).Append("='").Append(value.Replace("'", "'\\''", StringComparison.Ordinal)).Append("'\n");
        }
        return text.ToString();
    }

    /// <summary>Writes the file readable by its owner only (it holds a password).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, string>> variables)
    {
        PrivateFiles.WriteAllText(path, Render(variables));
    }
}
