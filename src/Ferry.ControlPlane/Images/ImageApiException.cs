namespace Ferry.ControlPlane.Images;

/// <summary>A Glance error: the HTTP status and the message webob puts in its body.</summary>
public sealed class ImageApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;

    public static ImageApiException NotFound(string id) => new(404, $"No image found with ID {id}");
}
