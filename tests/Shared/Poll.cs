/// <summary>Waiting for something another thread or process does, in every test project.</summary>
internal static class Poll
{
    /// <summary>Polls <paramref name="condition"/> until it holds (true) or <paramref name="timeout"/> passes
    /// (false). The timeout is a generous upper bound, not a timing assertion.</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(25).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>The same for a condition that has to be awaited (an API call, a query of another process).</summary>
    public static async Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition().ConfigureAwait(false))
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(25).ConfigureAwait(false);
        }
        return true;
    }
}
