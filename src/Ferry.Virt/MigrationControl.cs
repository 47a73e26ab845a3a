namespace Ferry.Virt;

/// <summary>
/// The control block of one outgoing live migration, shared by the drivers' monitors: requests from other threads
/// (abort, force-complete) and the one-way door into post-copy, after which an abort is refused (Nova: a post-copy
/// cannot be aborted). A monitor polls it, or sleeps on <see cref="WakeTask"/> to be woken by a request.
/// </summary>
internal sealed class MigrationControl
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _abortRequested;
    private bool _forceRequested;
    private bool _postCopy;
    private bool _finished;

    public bool AbortRequested
    {
        get { lock (_lock) { return _abortRequested; } }
    }

    public bool ForceRequested
    {
        get { lock (_lock) { return _forceRequested; } }
    }

    /// <summary>True once <see cref="TryEnterPostCopy"/> succeeded: the guest's memory is split between both hosts.</summary>
    public bool PostCopy
    {
        get { lock (_lock) { return _postCopy; } }
    }

    /// <summary>Completes when abort or force-complete is requested after the last call.</summary>
    public Task WakeTask
    {
        get { lock (_lock) { return _wake.Task; } }
    }

    /// <summary>Asks the monitor to cancel; refused once in post-copy or finished.</summary>
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

    /// <summary>Enters post-copy unless an abort got in first.</summary>
    public bool TryEnterPostCopy()
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

    /// <summary>The hypervisor refused the switch: still pre-copy, so an abort is possible again.</summary>
    public void LeavePostCopy()
    {
        lock (_lock)
        {
            _postCopy = false;
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
