namespace Ferry.Virt.Fake;

/// <summary>
/// The control block of one running live migration: requests from other threads (abort, force-complete)
/// and the one-way switch to post-copy. The copy loop in <see cref="FakeDriver"/> polls it between rounds
/// and is woken from its sleep when a request arrives.
/// </summary>
internal sealed class FakeMigration(string instanceUuid)
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _abortRequested;
    private bool _forceRequested;
    private bool _postCopy;
    private bool _finished;

    public string InstanceUuid { get; } = instanceUuid;

    public bool AbortRequested
    {
        get { lock (_lock) { return _abortRequested; } }
    }

    public bool ForceRequested
    {
        get { lock (_lock) { return _forceRequested; } }
    }

    /// <summary>True once <see cref="TrySwitchToPostCopy"/> succeeded: the guest's memory is split between both hosts.</summary>
    public bool IsPostCopy
    {
        get { lock (_lock) { return _postCopy; } }
    }

    /// <summary>Completes when abort or force-complete is requested after the last call.</summary>
    public Task WakeTask
    {
        get { lock (_lock) { return _wake.Task; } }
    }

    /// <summary>Asks the loop to cancel; refused once in post-copy or finished (nova: abort of post-copy is not possible).</summary>
    public bool TryAbort()
    {
        lock (_lock)
        {
            if (_postCopy || _finished)
            {
                return false;
            }
            _abortRequested = true;
            WakeLocked();
            return true;
        }
    }

    public bool TryForceComplete()
    {
        lock (_lock)
        {
            if (_finished)
            {
                return false;
            }
            _forceRequested = true;
            WakeLocked();
            return true;
        }
    }

    /// <summary>The one-way door: after this an abort is refused. Fails if an abort got in first.</summary>
    public bool TrySwitchToPostCopy()
    {
        lock (_lock)
        {
            if (_abortRequested || _finished)
            {
                return false;
            }
            _postCopy = true;
            return true;
        }
    }

    public void Finish()
    {
        lock (_lock)
        {
            _finished = true;
            WakeLocked();
        }
    }

    private void WakeLocked()
    {
        _wake.TrySetResult();
        _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
