using Ferry.Virt;

namespace Ferry.Tests.Virt;

public sealed class ConsoleLogTests
{
    [Theory]
    [InlineData("a\nb\nc\n", null, "a\nb\nc\n")]
    [InlineData("a\nb\nc\n", -1, "a\nb\nc\n")]
    [InlineData("a\nb\nc\n", 0, "")]
    [InlineData("a\nb\nc\n", 1, "c\n")]
    [InlineData("a\nb\nc\n", 2, "b\nc\n")]
    [InlineData("a\nb\nc", 2, "b\nc")]
    [InlineData("a\nb\nc\n", 10, "a\nb\nc\n")]
    [InlineData("", 3, "")]
    public void Tail_KeepsTheLastLines(string output, int? lines, string expected) =>
        Assert.Equal(expected, ConsoleLog.Tail(output, lines));

    [Fact]
    public async Task ReadTail_LargeLog_ServesOnlyTheLast100KiB()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(path, new string('x', 150 * 1024) + "end\n");
            var tail = await ConsoleLog.ReadTailAsync(path, CancellationToken.None);
            Assert.Equal(ConsoleLog.MaxBytes, tail.Length);
            Assert.EndsWith("xend\n", tail);
            Assert.Equal("", await ConsoleLog.ReadTailAsync(path + ".missing", CancellationToken.None));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
