using Ferry.Core.Rpc;

namespace Ferry.Tests.Core.Rpc;

/// <summary>A dispatcher that runs a test's handler and records every payload it ran (its name tells listeners apart).</summary>
internal sealed class RecordingDispatcher(string name, Func<string, byte[], CancellationToken, Task<byte[]>> handler) : IRpcDispatcher
{
    private readonly List<string> _handled = [];

    public RecordingDispatcher(string name) : this(name, (_, payload, _) => Task.FromResult(payload))
    {
    }

    public string Name { get; } = name;

    public IReadOnlyList<string> Handled
    {
        get
        {
            lock (_handled)
            {
                return [.. _handled];
            }
        }
    }

    public async Task<byte[]> DispatchAsync(string method, byte[] payload, CancellationToken cancellationToken)
    {
        var result = await handler(method, payload, cancellationToken);
        lock (_handled)
        {
            _handled.Add(System.Text.Encoding.UTF8.GetString(payload));
        }
        return result;
    }
}
