using Ferry.ControlPlane.Api;

namespace Ferry.Tests.Api;

/// <summary>The servers <c>name</c> filter: Nova's regex semantics, compiled once, linear on pathological patterns.</summary>
public sealed class NameFilterTests
{
    [Theory]
    [InlineData("^web-[0-9]+$", "web-12", true)]
    [InlineData("^web-[0-9]+$", "web-x", false)]
    [InlineData("db", "prod-db-1", true)]
    [InlineData("(a+)+b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", true)]
    [InlineData("^(a+)+$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", false)]
    [InlineData("(x)\\1", "axxb", true)]
    [InlineData("(x)\\1", "axb", false)]
    [InlineData("((", "a((b", true)]
    public void NameFilter_MatchesAsNovasRegexFilter(string pattern, string name, bool expected) =>
        Assert.Equal(expected, ServersEndpoints.NameFilter(pattern)(name));

    [Fact]
    public void NameFilter_CatastrophicPattern_OverManyNames_TerminatesWithCorrectAnswers()
    {
        var matches = ServersEndpoints.NameFilter("^(a|aa)+$");
        var names = Enumerable.Range(0, 2000).Select(i => new string('a', 40 + (i % 20)) + "!").ToList();
        Assert.DoesNotContain(names, n => matches(n));
        Assert.True(matches(new string('a', 60)));
    }
}
