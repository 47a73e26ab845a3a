using System.Text.Json.Nodes;

namespace Ferry.FunctionalTests.Cli;

internal static class CliPolling
{
    /// <summary>Re-runs <paramref name="read"/> until <paramref name="done"/> holds; fails with the last answer after <paramref name="seconds"/>.</summary>
    public static async Task<JsonNode> UntilAsync(Func<Task<JsonNode>> read, Func<JsonNode, bool> done, string what, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var node = await read();
            if (done(node))
            {
                return node;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for {what}; last answer: {node.ToJsonString()}");
            }
            await Task.Delay(250);
        }
    }
}
