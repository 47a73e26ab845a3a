using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>Nova's ImageDownloadFailed (wording of nova/exception.py: "Failed to download image …: reason").</summary>
public sealed class ImageDownloadFailedException(string imageId, string reason)
    : FerryException($"Failed to download image {imageId}: {reason}", 500);
