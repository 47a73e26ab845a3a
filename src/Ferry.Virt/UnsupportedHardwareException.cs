using Ferry.Core.Errors;

namespace Ferry.Virt;

/// <summary>
/// The guest asks for a device this driver cannot give it (nova.exception.UnsupportedHardware), for example an
/// <c>hw_vif_model</c> image property naming a NIC model the virt type does not offer. A build fails with it.
/// </summary>
public sealed class UnsupportedHardwareException(string model, string virt)
    : BadRequestException($"Requested hardware '{model}' is not supported by the '{virt}' virt driver");
