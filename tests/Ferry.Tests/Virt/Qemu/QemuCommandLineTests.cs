using Ferry.Virt;
using Ferry.Virt.Qemu;

namespace Ferry.Tests.Virt.Qemu;

public sealed class QemuCommandLineTests
{
    private static QemuLaunchSpec Spec() => new()
    {
        Uuid = "6f1b9a52-3f47-4bd3-9a0b-1d2b3c4d5e6f",
        Name = "instance-00000001",
        MemoryMb = 64,
        Vcpus = 2,
        KernelPath = "/k/ferry-test-guest.elf",
        KernelAppend = "region_mib=4 dirty_kib_per_tick=0",
        DiskPath = "/i/6f1b/disk",
        SerialLogPath = "/i/6f1b/console.log",
        QmpSocketPath = "/i/6f1b/qmp.sock",
        PidFilePath = "/i/6f1b/qemu.pid",
    };

    private static string After(IReadOnlyList<string> args, string option)
    {
        var i = args.ToList().IndexOf(option);
        Assert.True(i >= 0 && i + 1 < args.Count, $"{option} missing in: {string.Join(' ', args)}");
        return args[i + 1];
    }

    [Fact]
    public void Build_KernelGuest_HasIdentityResourcesAndKernel()
    {
        var args = QemuCommandLine.Build(Spec());

        Assert.Equal("6f1b9a52-3f47-4bd3-9a0b-1d2b3c4d5e6f", After(args, "-uuid"));
        Assert.Equal("instance-00000001", After(args, "-name"));
        Assert.Equal("64", After(args, "-m"));
        Assert.Equal("2", After(args, "-smp"));
        Assert.Equal("tcg", After(args, "-accel"));
        Assert.Equal("qemu64", After(args, "-cpu"));
        Assert.Equal("/k/ferry-test-guest.elf", After(args, "-kernel"));
        Assert.Equal("region_mib=4 dirty_kib_per_tick=0", After(args, "-append"));
        Assert.Equal("/i/6f1b/qemu.pid", After(args, "-pidfile"));
        Assert.Contains("-nodefaults", args);
        Assert.DoesNotContain("-daemonize", args);
        Assert.DoesNotContain("-S", args);
        Assert.DoesNotContain("-incoming", args);
    }

    [Fact]
    public void Build_Volumes_NbdNodesThatReconnectAndDisksInTheSlotsTheirDeviceNamesFix()
    {
        var connection = new Ferry.Core.Volumes.VolumeConnectionInfo { Host = "10.233.1.1", Port = 10809, Export = "volume-v1" };
        var args = QemuCommandLine.Build(Spec() with
        {
            Volumes = [new Ferry.Virt.GuestVolume("v1", "/dev/vdc", connection), new Ferry.Virt.GuestVolume("v2", "/dev/vdb", connection with { Export = "volume-v2", AccessMode = "ro" })],
            Nics = [new QemuNic("tap1", "fa:16:3e:00:00:01")],
        });

        var text = string.Join(' ', args);
        Assert.Contains("-blockdev driver=nbd,node-name=vol-vdc,server.type=inet,server.host=10.233.1.1,server.port=10809,export=volume-v1,reconnect-delay=30 -device virtio-blk-pci,drive=vol-vdc,id=vol-vdc-dev,addr=0x11", text, StringComparison.Ordinal);
        Assert.Contains("export=volume-v2,reconnect-delay=30,read-only=on -device virtio-blk-pci,drive=vol-vdb,id=vol-vdb-dev,addr=0x10", text, StringComparison.Ordinal);
        Assert.True(text.IndexOf("vol-vdb-dev", StringComparison.Ordinal) < text.IndexOf("-netdev", StringComparison.Ordinal), "volumes come before the NICs");
    }

    [Fact]
    public void Build_RootVolumeAndNoDisk_BootsFromTheVolumeInTheRootSlot()
    {
        var connection = new Ferry.Core.Volumes.VolumeConnectionInfo { Host = "10.233.1.1", Port = 10809, Export = "volume-root" };
        var args = QemuCommandLine.Build(Spec() with
        {
            KernelPath = null,
            DiskPath = null,
            Volumes = [new Ferry.Virt.GuestVolume("root", Ferry.Core.Volumes.VolumeDevices.Root, connection, BootIndex: 0)],
        });

        var text = string.Join(' ', args);
        Assert.Contains("-device virtio-blk-pci,drive=vol-vda,id=vol-vda-dev,addr=0xf,bootindex=1", text, StringComparison.Ordinal);
        Assert.DoesNotContain("disk0", text, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec() with { KernelPath = null, DiskPath = null }));
    }

    [Theory]
    [InlineData("/dev/vda", 0x0f)]
    [InlineData("/dev/vdb", 0x10)]
    [InlineData("vdc", 0x11)]
    [InlineData("/dev/vdq", 0x1f)]
    public void SlotOf_DeviceName_FixedSlot(string device, int slot) => Assert.Equal(slot, Ferry.Core.Volumes.VolumeDevices.SlotOf(device));

    [Theory]
    [InlineData("vda1")]
    [InlineData("/dev/vdr")]
    [InlineData("/dev/sdb")]
    [InlineData("/dev/vdbb")]
    public void SlotOf_NotAVolumeDevice_Refused(string device) => Assert.Throws<ArgumentException>(() => Ferry.Core.Volumes.VolumeDevices.SlotOf(device));

    [Fact]
    public void Build_Nics_TapBackendsWithoutScriptsAndDevicesWithThePortsMacsAfterTheDisks()
    {
        var args = QemuCommandLine.Build(Spec() with
        {
            ConfigDrivePath = "/i/6f1b/disk.config",
            Nics = [new QemuNic("tap1b2c3d4e-5f", "fa:16:3e:00:00:01"), new QemuNic("tap9a8b7c6d-5e", "fa:16:3e:00:00:02", "e1000")],
        });

        var netdevs = args.Select((a, i) => (a, i)).Where(x => x.a == "-netdev").Select(x => args[x.i + 1]).ToList();
        Assert.Equal(["tap,id=net0,ifname=tap1b2c3d4e-5f,script=no,downscript=no", "tap,id=net1,ifname=tap9a8b7c6d-5e,script=no,downscript=no"], netdevs);
        var devices = args.Select((a, i) => (a, i)).Where(x => x.a == "-device").Select(x => args[x.i + 1]).ToList();
        Assert.Equal("virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01,id=net0-dev", devices[^2]);
        Assert.Equal("e1000,netdev=net1,mac=fa:16:3e:00:00:02,id=net1-dev", devices[^1]);
        Assert.StartsWith("virtio-blk-pci,drive=config0", devices[^3]);
    }

    [Fact]
    public void Build_NoNics_NoNetworkAtAll()
    {
        Assert.DoesNotContain("-netdev", QemuCommandLine.Build(Spec()));
    }

    [Fact]
    public void Build_Always_HasSerialFileAndQmpServerSocket()
    {
        var args = QemuCommandLine.Build(Spec());

        Assert.Contains("file,id=serial0,path=/i/6f1b/console.log,append=on", args);
        Assert.Equal("chardev:serial0", After(args, "-serial"));
        Assert.Contains("socket,id=qmp0,path=/i/6f1b/qmp.sock,server=on,wait=off", args);
        Assert.Equal("chardev=qmp0,mode=control", After(args, "-mon"));
    }

    [Fact]
    public void Build_KernelGuestWithDisk_AttachesQcow2WithoutBootIndex()
    {
        var args = QemuCommandLine.Build(Spec());

        Assert.Contains("driver=file,node-name=disk0-file,filename=/i/6f1b/disk", args);
        Assert.Contains("driver=qcow2,node-name=disk0,file=disk0-file", args);
        Assert.Contains("virtio-blk-pci,drive=disk0,id=disk0-dev", args);
    }

    [Fact]
    public void Build_DiskBoot_SetsBootIndexAndNoKernel()
    {
        var args = QemuCommandLine.Build(Spec() with { KernelPath = null, KernelAppend = null });

        Assert.DoesNotContain("-kernel", args);
        Assert.DoesNotContain("-append", args);
        Assert.Contains("virtio-blk-pci,drive=disk0,id=disk0-dev,bootindex=1", args);
    }

    [Fact]
    public void Build_ConfigDrive_AttachedReadOnlyRaw()
    {
        var args = QemuCommandLine.Build(Spec() with { ConfigDrivePath = "/i/6f1b/disk.config" });

        Assert.Contains("driver=file,node-name=config0-file,filename=/i/6f1b/disk.config,read-only=on", args);
        Assert.Contains("driver=raw,node-name=config0,file=config0-file,read-only=on", args);
    }

    [Fact]
    public void Build_IncomingDeferredAndPaused_AddsIncomingAndS()
    {
        var args = QemuCommandLine.Build(Spec() with { IncomingUri = "defer", StartPaused = true, Accel = "kvm" });

        Assert.Equal("defer", After(args, "-incoming"));
        Assert.Contains("-S", args);
        Assert.Equal("kvm", After(args, "-accel"));
    }

    [Fact]
    public void Build_CommasInPathsAndName_AreDoubled()
    {
        var args = QemuCommandLine.Build(Spec() with { Name = "a,b", SerialLogPath = "/x,y/console.log" });

        Assert.Equal("a,,b", After(args, "-name"));
        Assert.Contains("file,id=serial0,path=/x,,y/console.log,append=on", args);
    }

    [Fact]
    public void Build_NoKernelNoDisk_Throws()
    {
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec() with { KernelPath = null, DiskPath = null }));
    }

    [Fact]
    public void Build_UnknownAccel_Throws()
    {
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec() with { Accel = "hvf" }));
    }

    [Theory]
    [InlineData("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright", 7002022)]
    [InlineData("QEMU emulator version 8.2.0", 8002000)]
    public void ParseVersion_QemuVersionOutput_IsNovaInteger(string output, long expected)
    {
        Assert.Equal(expected, QemuDriver.ParseVersion(output));
    }

    [Theory]
    [InlineData("running", GuestPowerState.Running)]
    [InlineData("paused", GuestPowerState.Paused)]
    [InlineData("postmigrate", GuestPowerState.Paused)]
    [InlineData("inmigrate", GuestPowerState.Paused)]
    [InlineData("shutdown", GuestPowerState.Shutdown)]
    [InlineData("guest-panicked", GuestPowerState.Crashed)]
    public void MapStatus_QemuRunState_IsPowerState(string status, GuestPowerState expected)
    {
        Assert.Equal(expected, QemuDriver.MapStatus(status));
    }

    [Fact]
    public void TestGuestKernelAppend_DirtyRateMetadata_BecomesKibPerTick()
    {
        var guest = new GuestSpec
        {
            Uuid = "u", Name = "n", Vcpus = 1, MemoryMb = 64, RootGb = 1, ImageRef = QemuTestGuest.DefaultImageRef,
            Metadata = new Dictionary<string, string> { [QemuTestGuest.DirtyRateMetadataKey] = "8", [QemuTestGuest.RegionMetadataKey] = "16" },
        };

        Assert.Equal("region_mib=16 dirty_kib_per_tick=82", QemuTestGuest.KernelAppend(guest));
    }

    [Fact]
    public void TestGuestParseSamples_ConsoleLog_ReadsCounterAndChecksum()
    {
        var log = "ferry-guest boot region_mib=4 dirty_kib_per_tick=64 tick_hz=100\nferry-guest counter=0 checksum=43548100\nferry-guest counter=49 checksum=537b5c63\nferry-guest counter=99 chec";

        var samples = QemuTestGuest.ParseSamples(log);

        Assert.Equal([new(0, 0x43548100u), new(49, 0x537b5c63u)], samples);
    }

    [Fact]
    public void TestGuestExpectedChecksum_MatchesValuesPrintedByTheGuest()
    {
        // Printed by tools/test-guest under TCG with region_mib=4 dirty_kib_per_tick=64.
        Assert.Equal(0x43548100u, QemuTestGuest.ExpectedChecksum(0, 4, 64));
        Assert.Equal(0x537b5c63u, QemuTestGuest.ExpectedChecksum(49, 4, 64));
        Assert.Equal(0x294372ebu, QemuTestGuest.ExpectedChecksum(99, 4, 64));
    }
}

public sealed class TestGuestIntegrityTests
{
    // Region 1 MiB (256 pages), 8 KiB (2 pages) per tick: one pass over the region takes 128 ticks.
    private const int Region = 1;
    private const int Kib = 8;

    private static string Line(long counter, long stateAt = -1) =>
        $"ferry-guest counter={counter} checksum={QemuTestGuest.ExpectedChecksum(stateAt < 0 ? counter : stateAt, Region, Kib):x8}\n";

    private static string Bad(long counter) => $"ferry-guest counter={counter} checksum=12345678\n";

    private static string Alarm(long counter) => $"ferry-guest corrupt counter={counter} checksum=12345678 expected=11111111\n";

    private static QemuTestGuest.Integrity Strict(string log) => QemuTestGuest.CheckIntegrity(log, Region, Kib, tolerateStalePage: false).Verdict;

    private static QemuTestGuest.Integrity Tcg(string log, long movedAtCounter = 50) =>
        QemuTestGuest.CheckIntegrity(log, Region, Kib, tolerateStalePage: true, movedAtCounter).Verdict;

    [Fact]
    public void HealingTicks_OnePassOverTheRegionPlusAStaleCounter() =>
        Assert.Equal(128 + QemuTestGuest.TcgStaleCounterTicks, QemuTestGuest.HealingTicks(Region, Kib));

    [Fact]
    public void CheckIntegrity_IntactLog_Intact()
    {
        Assert.Equal(QemuTestGuest.Integrity.Intact, Strict(Line(10) + Line(60)));
        Assert.Equal(QemuTestGuest.Integrity.Intact, Tcg(Line(10) + Line(60)));
    }

    [Fact]
    public void CheckIntegrity_StaleRegionPageRewrittenLater_ToleratedOnlyUnderTcg()
    {
        // The first destination lines match no state (a stale region page, the guest's own alarm) until a pass rewrote it.
        var log = Line(10) + Bad(60) + Alarm(60) + Bad(110) + Line(160);
        Assert.Equal(QemuTestGuest.Integrity.Lost, Strict(log));
        Assert.Equal(QemuTestGuest.Integrity.Intact, Tcg(log));
    }

    [Fact]
    public void CheckIntegrity_StaleCounter_ToleratedOnlyUnderTcg()
    {
        // The first destination line shows memory a few ticks ahead of its counter; the guest replays those ticks.
        var log = Line(10) + Line(60, stateAt: 63) + Alarm(60) + Line(110);
        Assert.Equal(QemuTestGuest.Integrity.Lost, Strict(log));
        Assert.Equal(QemuTestGuest.Integrity.Intact, Tcg(log));
    }

    [Fact]
    public void CheckIntegrity_WrongLinesSinceTheMove_HealingUntilOnePassIsOver()
    {
        Assert.Equal(QemuTestGuest.Integrity.Healing, Tcg(Line(10) + Bad(60)));
        Assert.Equal(QemuTestGuest.Integrity.Healing, Tcg(Line(10) + Bad(60) + Bad(60 + 144)));
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Bad(60) + Bad(60 + 145)));
    }

    [Fact]
    public void CheckIntegrity_DriftThatNeverMatches_Lost()
    {
        // A line in some other state (here 300) is not healing either.
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Bad(60) + Line(110, stateAt: 300) + Line(210, stateAt: 400)));
    }

    [Fact]
    public void CheckIntegrity_AfterHealing_StrictAgain()
    {
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Bad(60) + Line(110) + Bad(160)));
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Bad(60) + Line(110) + Alarm(110)));
    }

    [Fact]
    public void CheckIntegrity_SourceStillPrintingAfterMovedAtCounter_DestinationsStalePageTolerated()
    {
        // Shared storage: the source's matching lines 60 and 110 come after the counter the test saw before the move.
        var log = Line(10) + Line(60) + Line(110) + Bad(160) + Alarm(160) + Line(210);
        Assert.Equal(QemuTestGuest.Integrity.Intact, Tcg(log));
        Assert.Equal(QemuTestGuest.Integrity.Lost, Strict(log));
    }

    [Fact]
    public void CheckIntegrity_CounterNotAboveThePreviousWithoutABoot_TwoCopiesPrint()
    {
        Assert.Equal(QemuTestGuest.Integrity.Lost, Strict(Line(10) + Line(110) + Line(60)));
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Line(60) + Line(60)));
        var rebooted = Line(10) + Line(60) + $"ferry-guest boot region_mib={Region} dirty_kib_per_tick={Kib} tick_hz=100\n" + Line(0) + Line(49);
        Assert.Equal(QemuTestGuest.Integrity.Intact, Strict(rebooted));
    }

    [Fact]
    public void CheckIntegrity_SourceLinesBeforeTheMove_AlwaysStrict()
    {
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10, stateAt: 12) + Line(60)));
        Assert.Equal(QemuTestGuest.Integrity.Lost, Tcg(Line(10) + Alarm(10) + Line(60)));
    }
}
