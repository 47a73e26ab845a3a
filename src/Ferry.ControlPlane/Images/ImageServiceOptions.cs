namespace Ferry.ControlPlane.Images;

/// <summary>Settings of the Glance v2 subset: where image data lives, and whether callers need a Keystone token.</summary>
public sealed record ImageServiceOptions(string ImagesDirectory, bool RequireToken);
