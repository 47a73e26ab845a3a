namespace Ferry.Virt.Storage;

/// <summary>
/// An exclusive lock on a file, held across processes: .NET opens a file with <see cref="FileShare.None"/> under an
/// advisory <c>flock(LOCK_EX | LOCK_NB)</c>, released when the stream closes (or its process dies, even by SIGKILL).
/// Two API replicas sharing a run directory take it around every daemon step, so one daemon is ever started.
/// </summary>
internal sealed class RunDirectoryLock : IAsyncDisposable
{
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(20);

    private readonly FileStream _stream;

    private RunDirectoryLock(FileStream stream) => _stream = stream;

    /// <summary>Waits until the lock is free, then holds it until disposed.</summary>
    public static async Task<RunDirectoryLock> AcquireAsync(string path, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return new RunDirectoryLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (File.Exists(path))
            {
                // held by another process (or another backend object in this one)
            }
            await Task.Delay(s_pollInterval, cancellationToken);
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
