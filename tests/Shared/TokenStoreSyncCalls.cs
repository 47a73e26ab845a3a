using Ferry.ControlPlane.Identity;

// In the global namespace so that every test file sees these without a using.
/// <summary>The token store's calls in blocking form, for tests (see <c>InstanceStoreSyncCalls</c>).</summary>
internal static class TokenStoreSyncCalls
{
    private static T Wait<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static IdentityToken Issue(this TokenStore store, UserEntry user, ProjectEntry? project, IReadOnlyList<RoleEntry> roles, IReadOnlyList<string> methods,
        DateTimeOffset? expiresAt = null, string? auditId = null) =>
        Wait(() => store.IssueAsync(user, project, roles, methods, expiresAt, auditId, CancellationToken.None));

    public static IdentityToken? Validate(this TokenStore store, string? id) => Wait(() => store.ValidateAsync(id, CancellationToken.None).AsTask());

    public static bool Revoke(this TokenStore store, string id) => Wait(() => store.RevokeAsync(id, CancellationToken.None));
}
