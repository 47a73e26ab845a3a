using Ferry.FunctionalTests.Fuzz;

namespace Ferry.FunctionalTests.Security;

/// <summary>
/// The policy matrix covers every route the host maps: a route added without a row in the matrix fails here, named.
/// </summary>
public sealed class PolicyMatrixCoverageTests(PolicyMatrixFixture fixture) : IClassFixture<PolicyMatrixFixture>
{
    /// <summary>Routes deliberately outside the matrix, each with the reason.</summary>
    private static readonly Dictionary<string, string> s_exempt = new(StringComparer.Ordinal)
    {
        ["Identity POST /v3/auth/tokens"] = "login: unauthenticated by design, the caller's token is not what it checks (IdentityPolicyTests, the lockout tests)",
    };

    [Fact]
    public void EveryMappedRoute_IsInPolicyMatrix()
    {
        var options = fixture.Ferry.Options;
        var ports = new Dictionary<int, FuzzService>
        {
            [options.ComputeApiPort] = FuzzService.Compute,
            [options.PlacementPort] = FuzzService.Placement,
            [options.IdentityPort] = FuzzService.Identity,
            [options.ImagePort] = FuzzService.Image,
            [options.NetworkPort] = FuzzService.Network,
            [options.VolumePort] = FuzzService.Volume,
        };
        var mapped = FuzzRoute.Enumerate(fixture.Ferry.Services, ports).Where(r => !r.IsFallback)
            .Select(r => (Service: (Service)(int)r.Service, r.Method, Template: Canonical((Service)(int)r.Service, r.Template)))
            .Distinct().ToList();
        var covered = new HashSet<(Service, string, string)>();
        foreach (var row in PolicyMatrixTests.Routes())
        {
            var route = row;
            var path = (route.Root ? "" : Prefix(route.Service)) + route.Path.Split('?')[0];
            // The most literal template that matches (as ASP.NET routing prefers /flavors/detail over /flavors/{id}).
            var best = mapped.Where(m => m.Service == route.Service && m.Method == route.Method && Matches(m.Template, path))
                .OrderByDescending(m => m.Template.Split('/').Count(s => !s.StartsWith('{')))
                .Select(m => ((Service, string, string)?)(m.Service, m.Method!, m.Template)).FirstOrDefault();
            Assert.True(best is not null, $"matrix row {route} matches no mapped route");
            covered.Add(best!.Value);
        }
        var missing = mapped.Where(m => !covered.Contains((m.Service, m.Method!, m.Template)))
            .Select(m => $"{m.Service} {m.Method} {m.Template}")
            .Where(k => !s_exempt.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} routes not in the policy matrix:\n" + string.Join("\n", missing));
    }

    /// <summary>The version prefix of the base URL <see cref="SecurityFixture.BaseUrl"/> gives for the service.</summary>
    private static string Prefix(Service service) => service switch
    {
        Service.Compute => "/v2.1",
        Service.Identity => "/v3",
        Service.Image => "/v2",
        Service.Network => "/v2.0",
        Service.Volume => "/v3",
        _ => "",
    };

    /// <summary>
    /// The template, with the compute API's legacy <c>/v2</c> routes (the same handlers) folded onto <c>/v2.1</c>, and the
    /// volume API's <c>/v3/{project_id}/…</c> routes (the same handlers, the project checked against the token's:
    /// VolumeApiTests.Projects_…) onto <c>/v3/…</c>.
    /// </summary>
    private static string Canonical(Service service, string template) => service switch
    {
        Service.Compute when template == "/v2" || template.StartsWith("/v2/", StringComparison.Ordinal) => "/v2.1" + template[3..],
        Service.Volume when template.StartsWith("/v3/{project_id}/", StringComparison.Ordinal) => "/v3/" + template["/v3/{project_id}/".Length..],
        _ => template,
    };

    private static bool Matches(string template, string path)
    {
        var t = template.Trim('/').Split('/');
        var p = path.Trim('/').Split('/');
        if (t.Length == 1 && t[0].Length == 0)
        {
            return p.Length == 1 && p[0].Length == 0;
        }
        for (var i = 0; i < t.Length; i++)
        {
            if (t[i].StartsWith("{**", StringComparison.Ordinal) || t[i].StartsWith("{*", StringComparison.Ordinal))
            {
                return true;
            }
            if (i >= p.Length)
            {
                return false;
            }
            var parameter = t[i].StartsWith('{') && t[i].EndsWith('}');
            if (!parameter && !string.Equals(t[i], p[i], StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }
        return t.Length == p.Length;
    }
}
