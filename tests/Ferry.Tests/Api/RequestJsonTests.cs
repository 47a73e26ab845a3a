using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;

namespace Ferry.Tests.Api;

public sealed class RequestJsonTests
{
    private static JsonNode? Parse(string text) => RequestJson.Parse(Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Parse_RepeatedKey_KeepsLastValueAsPythonJsonDoes()
    {
        var node = Parse("""{"flavor": {"ram": 1, "ram": 2}, "flavor": {"ram": 3, "ram": null, "ram": 4}}""");

        Assert.Equal(4, node!["flavor"]!["ram"]!.GetValue<int>());
        Assert.Single(node.AsObject());
    }

    [Theory]
    [InlineData("""{"name": "\ud800"}""")]
    [InlineData("""{"name": "a\udc00b"}""")]
    [InlineData("""{"\ud800": 1}""")]
    [InlineData("""["\udfff\ud800"]""")]
    public void Parse_LoneSurrogateEscape_ThrowsJsonException(string text) =>
        Assert.ThrowsAny<JsonException>(() => Parse(text));

    [Fact]
    public void Parse_InvalidUtf8InString_ThrowsJsonException()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"name": "ab"}""");
        bytes[10] = 0xFF;

        Assert.ThrowsAny<JsonException>(() => RequestJson.Parse(bytes));
    }

    [Theory]
    [InlineData("{")]
    [InlineData("""{"a": 1""")]
    [InlineData("""{"a": 1}{"b": 2}""")]
    [InlineData("""{"a": 1,}""")]
    [InlineData("""{'a': 1}""")]
    [InlineData("""{"a": NaN}""")]
    public void Parse_MalformedOrTruncated_ThrowsJsonException(string text) =>
        Assert.ThrowsAny<JsonException>(() => Parse(text));

    [Fact]
    public void Parse_NestedDeeperThan64_ThrowsJsonException() =>
        Assert.ThrowsAny<JsonException>(() => Parse(new string('[', 65) + new string(']', 65)));

    [Theory]
    [InlineData("")]
    [InlineData(" \r\n\t")]
    public void Parse_EmptyBody_ReturnsNull(string text) => Assert.Null(Parse(text));

    [Fact]
    public void Parse_NumbersAndLiterals_KeepTheirKinds()
    {
        var node = Parse("""{"big": 1e400, "int": -7, "t": true, "n": null, "s": "é"}""")!;

        Assert.Equal(JsonValueKind.Number, node["big"]!.GetValueKind());
        Assert.False(node["big"]!.AsValue().TryGetValue<int>(out _));
        Assert.Equal(-7, node["int"]!.GetValue<int>());
        Assert.True(node["t"]!.GetValue<bool>());
        Assert.Null(node["n"]);
        Assert.Equal("é", node["s"]!.GetValue<string>());
    }
}
