using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Images;

/// <summary>
/// Who may see and change an image, as Glance's default policy has it (and Nova, which asks Glance as the
/// caller): public and community images and the built-in catalog are seen by everyone, anything else only by
/// its owner's project and admins; only the owner's members and admins change an image.
/// </summary>
public static class ImageAccess
{
    public static bool CanSee(string projectId, bool isAdmin, Image image) =>
        isAdmin || image.Visibility is "public" or "community" || image.Owner is null || image.Owner == projectId;

    public static bool CanModify(string projectId, bool isAdmin, Image image) =>
        isAdmin || (image.Owner is not null && image.Owner == projectId);

    /// <summary>
    /// The one spelling of an image id (lower-case, hyphenated), or null when <paramref name="id"/> is not a UUID.
    /// Ids are stored and compared only in this form: two spellings of one UUID name the same data file.
    /// </summary>
    public static string? Canonical(string id) =>
        Guid.TryParseExact(id, "D", out var guid) ? guid.ToString("D") : null;
}
