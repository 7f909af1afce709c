namespace Transport.Tcp.Net;

/// <summary>Sees every send of a connection's output before it goes out (a wire trace).</summary>
internal interface ISendObserver
{
    /// <summary>The bytes of one send, in order; valid only during the call.</summary>
    void Sent(List<ArraySegment<byte>> segments);
}

/// <summary>An output whose sends can be observed.</summary>
internal interface IObservableSend
{
    ISendObserver? Observer { get; set; }
}
