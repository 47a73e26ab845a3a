using System.Diagnostics;
using Ferry.Host;
using Ferry.Tests.Shared;
using Ferry.Virt;
using Microsoft.Extensions.Logging;

namespace Ferry.Tests.Host;

public sealed class FerryCommandLineTests
{
    [Fact]
    public void HelpText_KeptCopy_EqualsTheCommandsOwnHelp()
    {
        var kept = File.ReadAllText(Path.Combine(TestRepository.Root(), "src", "Ferry.Host", "ferry-up-help.txt"));
        Assert.True(kept == FerryCommandLine.HelpText(),
            "src/Ferry.Host/ferry-up-help.txt differs from the command's help: regenerate it with " +
            "`dotnet src/Ferry.Host/bin/Release/net10.0/ferry.dll all-in-one --help > src/Ferry.Host/ferry-up-help.txt`");
    }

    [Fact]
    public async Task FerryUpHelp_WithoutBuild_ListsEveryOptionWithItsMeaning()
    {
        var start = new ProcessStartInfo("bash") { WorkingDirectory = TestRepository.Root(), RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "ferry", "up", "--hosts", "2", "--help" })
        {
            start.ArgumentList.Add(arg);
        }
        // A dotnet first on the PATH that only records that it ran: the help must not build or run anything.
        var stubs = TestTempNames.Directory("no-dotnet");
        var marker = Path.Combine(stubs, "dotnet-ran");
        var stub = Path.Combine(stubs, "dotnet");
        await File.WriteAllTextAsync(stub, $"#!/bin/sh\ntouch '{marker}'\nexit 97\n");
        File.SetUnixFileMode(stub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        start.Environment["PATH"] = $"{stubs}:{Environment.GetEnvironmentVariable("PATH")}";
        string stdout, stderr;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var process = Process.Start(start)!;
            stdout = await process.StandardOutput.ReadToEndAsync(timeout.Token);
            stderr = await process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"./ferry up --help exited {process.ExitCode}: {stderr}");
            Assert.False(File.Exists(marker), "./ferry up --help ran dotnet");
        }
        finally
        {
            Directory.Delete(stubs, recursive: true);
        }

        Assert.Equal(FerryCommandLine.HelpText(), stdout);
        var options = FerryCommandLine.Command.Options;
        Assert.True(options.Count > 20, $"only {options.Count} options");
        foreach (var option in options)
        {
            Assert.Contains(option.Name, stdout, StringComparison.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(option.Description), $"{option.Name} has no description");
            // The first words of the meaning are printed beside the flag.
            var firstWords = string.Join(' ', option.Description!.Split(' ').Take(3));
            Assert.Contains(firstWords, stdout, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--hosts abc", "--hosts: 'abc' is not a whole number")]
    [InlineData("--hosts 0", "--hosts: 0 is out of range (1..10000)")]
    [InlineData("--hosts", "'--hosts'")]
    [InlineData("--driver xen", "--driver: 'xen' is not one of fake, qemu")]
    [InlineData("--auth basic", "--auth: 'basic' is not one of keystone, noauth2")]
    [InlineData("--compute-port 70000", "--compute-port: 70000 is out of range (0..65535)")]
    [InlineData("--token-lifetime soon", "--token-lifetime: 'soon' is not a number")]
    [InlineData("--time-scale -1", "--time-scale: -1 is below 0")]
    [InlineData("--lm-timeout-action wait", "--lm-timeout-action: 'wait' is not one of abort, force_complete")]
    [InlineData("--lm-bandwidth -5", "--lm-bandwidth: -5 is below 0")]
    [InlineData("--log-level loud", "--log-level: 'loud' is not one of trace, debug, information, warning, error, critical, none")]
    [InlineData("--max-concurrent-live-migrations many", "--max-concurrent-live-migrations: 'many' is not a whole number")]
    [InlineData("--image-size-cap 1G", "--image-size-cap: '1G' is not a whole number")]
    [InlineData("--image-size-cap 0", "--image-size-cap: 0 is below 1")]
    [InlineData("--lockout-failure-attempts -1", "--lockout-failure-attempts: -1 is out of range (0..1000)")]
    [InlineData("--lockout-duration 0", "--lockout-duration: 0 is below 1")]
    [InlineData("--no-such-flag", "'--no-such-flag'")]
    public void Parse_BadValue_OneLineNamingTheFlag(string commandLine, string expected)
    {
        var result = FerryCommandLine.Parse(commandLine.Split(' '));

        var error = Assert.Single(result.Errors);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        var thrown = Assert.Throws<ArgumentException>(() => FerryHostOptions.Parse(commandLine.Split(' ')));
        Assert.Contains(expected, thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NoArguments_TheDefaultsOfFerryUp()
    {
        var options = FerryHostOptions.Parse([]);
        var defaults = new FerryHostOptions();

        Assert.Equal("keystone", options.Auth);
        Assert.Equal("var", options.DataDirectory);
        Assert.Equal("fake", options.Driver);
        Assert.Equal(3, options.Hosts);
        Assert.Equal((8774, 8778, 5000, 9292), (options.ComputeApiPort, options.PlacementPort, options.IdentityPort, options.ImagePort));
        Assert.Equal(LogLevel.Information, options.LogLevel);
        Assert.Equal(defaults.TokenLifetime, options.TokenLifetime);
        Assert.Equal(defaults.ReportInterval, options.ReportInterval);
        Assert.Equal(defaults.ServiceDownTime, options.ServiceDownTime);
        Assert.Equal(defaults.FakeTimeScale, options.FakeTimeScale);
        Assert.Equal(defaults.MaxConcurrentLiveMigrations, options.MaxConcurrentLiveMigrations);
        Assert.Equal(defaults.LiveMigrationCompletionTimeoutSecondsPerGiB, options.LiveMigrationCompletionTimeoutSecondsPerGiB);
        Assert.Equal(defaults.LiveMigrationPostCopyRecoveryAttempts, options.LiveMigrationPostCopyRecoveryAttempts);
        Assert.Equal(defaults.LiveMigrationPostCopyStallSeconds, options.LiveMigrationPostCopyStallSeconds);
        Assert.Equal(defaults.LiveMigrationParallelConnections, options.LiveMigrationParallelConnections);
        Assert.Equal(defaults.TestGuestKernelPath, options.TestGuestKernelPath);
        Assert.Equal(1L << 40, options.ImageSizeCap);
        Assert.Equal((6, TimeSpan.FromSeconds(1800)), (options.LockoutFailureAttempts, options.LockoutDuration));
        Assert.False(options.SharedStorage || options.KillGuestsOnStop || options.LiveMigrationPermitPostCopy || options.LiveMigrationPermitAutoConverge);
    }

    [Fact]
    public void Parse_EveryFlag_KeepsItsMeaning()
    {
        var options = FerryHostOptions.Parse(
        [
            "--driver", "qemu", "--hosts", "5", "--shared-storage", "--data-dir", "/tmp/x",
            "--compute-port", "1", "--placement-port", "2", "--identity-port", "3", "--image-port", "4",
            "--auth", "noauth2", "--token-lifetime", "90", "--log-level", "debug",
            "--lockout-failure-attempts", "0", "--lockout-duration", "60", "--image-size-cap", "4096",
            "--test-guest-kernel", "k.elf", "--kill-guests-on-stop",
            "--lm-bandwidth", "100", "--lm-permit-post-copy", "--lm-permit-auto-converge", "--lm-completion-timeout", "7",
            "--lm-timeout-action", "force_complete", "--lm-postcopy-recovery-attempts", "2", "--lm-postcopy-stall", "3",
            "--lm-parallel-connections", "4", "--max-concurrent-live-migrations", "0",
            "--time-scale", "0.5", "--report-interval", "2.5", "--service-down-time", "30",
            "--sync-power-state-interval", "600",
        ]);

        Assert.Equal("qemu", options.Driver);
        Assert.Equal(5, options.Hosts);
        Assert.True(options.SharedStorage);
        Assert.Equal("/tmp/x", options.DataDirectory);
        Assert.Equal((1, 2, 3, 4), (options.ComputeApiPort, options.PlacementPort, options.IdentityPort, options.ImagePort));
        Assert.Equal("noauth2", options.Auth);
        Assert.Equal(TimeSpan.FromSeconds(90), options.TokenLifetime);
        Assert.Equal((0, TimeSpan.FromSeconds(60)), (options.LockoutFailureAttempts, options.LockoutDuration));
        Assert.Equal(4096, options.ImageSizeCap);
        Assert.Equal(LogLevel.Debug, options.LogLevel);
        Assert.Equal("k.elf", options.TestGuestKernelPath);
        Assert.True(options.KillGuestsOnStop);
        Assert.Equal(100, options.LiveMigrationBandwidthMiBps);
        Assert.True(options.LiveMigrationPermitPostCopy);
        Assert.True(options.LiveMigrationPermitAutoConverge);
        Assert.Equal(7, options.LiveMigrationCompletionTimeoutSecondsPerGiB);
        Assert.Equal(CompletionTimeoutAction.ForceComplete, options.LiveMigrationTimeoutAction);
        Assert.Equal(2, options.LiveMigrationPostCopyRecoveryAttempts);
        Assert.Equal(3, options.LiveMigrationPostCopyStallSeconds);
        Assert.Equal(4, options.LiveMigrationParallelConnections);
        Assert.Equal(0, options.MaxConcurrentLiveMigrations);
        Assert.Equal(0.5, options.FakeTimeScale);
        Assert.Equal(TimeSpan.FromSeconds(2.5), options.ReportInterval);
        Assert.Equal(TimeSpan.FromSeconds(30), options.ServiceDownTime);
        Assert.Equal(TimeSpan.FromSeconds(600), options.PowerStateSyncInterval);
    }

    [Fact]
    public void Parse_Help_AsksForHelp()
    {
        Assert.True(FerryCommandLine.WantsHelp(FerryCommandLine.Parse(["--hosts", "2", "--help"])));
        Assert.False(FerryCommandLine.WantsHelp(FerryCommandLine.Parse(["--hosts", "2"])));
    }
}
