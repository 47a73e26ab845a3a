using System.Net;
using System.Text.Json.Nodes;
using Ferry.Core.Domain;

namespace Ferry.FunctionalTests.Qemu;

/// <summary>What an operator sees when QEMU itself refuses to run a guest.</summary>
[Collection("qemu")]
[Trait("Requires", "qemu")]
public sealed class QemuFaultTests(QemuFerryFixture fixture) : QemuFlowTest<QemuFerryFixture>(fixture)
{
    [Fact]
    public async Task Boot_QemuRefusesToStart_FaultQuotesQemuAndDetailsHoldNoStackTrace()
    {
        var options = Qemu("compute1").Options;
        var cpu = options.CpuModel;
        options.CpuModel = "no-such-cpu";
        string id;
        try
        {
            var (status, body) = await Admin.PostAsync("servers", JsonNode.Parse("""
                {"server": {"name": "refused", "imageRef": "ferry-test-guest", "flavorRef": "m1.nano", "networks": "none", "availability_zone": "nova:compute1"}}
                """));
            Assert.True(status == HttpStatusCode.Accepted, $"boot: {(int)status} {body?.ToJsonString()}");
            id = body!["server"]!["id"]!.GetValue<string>();
            Track(id);
            await WaitForAsync(id, i => i.VmState == VmState.Error, "ERROR after QEMU refused to start");
        }
        finally
        {
            options.CpuModel = cpu;
        }

        var fault = (await Admin.GetServerAsync(id))["fault"]!;
        var message = fault["message"]!.GetValue<string>();
        var details = fault["details"]!.GetValue<string>();
        Assert.Contains("no-such-cpu", message); // QEMU's own words: unable to find CPU model 'no-such-cpu'
        Assert.Contains("qemu.log", details);
        Assert.Contains("no-such-cpu", details);
        Assert.DoesNotContain(" at Ferry.", details);
    }
}
