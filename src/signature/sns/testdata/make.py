import json, subprocess, base64
def sign(text, alg):
    open('t.txt','wb').write(text.encode())
    sig = subprocess.check_output(['openssl','dgst','-'+alg,'-sign','k.pem','t.txt'])
    return base64.b64encode(sig).decode()
def canon(m):
    if m['Type']=='Notification':
        names=['Message','MessageId','Subject','Timestamp','TopicArn','Type']
    else:
        names=['Message','MessageId','SubscribeURL','Timestamp','Token','TopicArn','Type']
    out=''
    for n in names:
        if n in m and m[n] is not None:
            out+=n+'\n'+m[n]+'\n'
    return out
topic='arn:aws:sns:us-west-2:123456789012:MyTopic'
cert='https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem'
inner={"originationNumber":"+14255550182","destinationNumber":"+12125550101","messageKeyword":"JOIN","messageBody":"Caf\u00e9 at 5?\nOK","inboundMessageId":"cae173d2-66b9-564c-8309-21f858e9fb84","previousPublishedMessageId":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
n1={"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":topic,"Subject":"Caf\u00e9 \u2615 first message","Message":json.dumps(inner),"Timestamp":"2012-05-02T00:54:06.655Z","SignatureVersion":"1"}
n1['Signature']=sign(canon(n1),'sha1'); n1['SigningCertURL']=cert; n1['UnsubscribeURL']='https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn='+topic+':c9135db0-26c4-47ec-8998-413945fb5a96'
n2={"Type":"Notification","MessageId":"da41e39f-ea4d-435a-b922-c6aae3915ebe","TopicArn":topic,"Message":json.dumps(inner),"Timestamp":"2012-04-25T21:49:25.719Z","SignatureVersion":"2"}
n2['Signature']=sign(canon(n2),'sha256'); n2['SigningCertURL']=cert; n2['UnsubscribeURL']=n1['UnsubscribeURL']
c={"Type":"SubscriptionConfirmation","MessageId":"165545c9-2a5c-472c-8df2-7ff2be2b3b1b","Token":"2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736","TopicArn":topic,"Message":"You have chosen to subscribe to the topic "+topic+".\nTo confirm the subscription, visit the SubscribeURL included in this message.","SubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn="+topic+"&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736","Timestamp":"2012-04-26T20:45:04.751Z","SignatureVersion":"1"}
c['Signature']=sign(canon(c),'sha1'); c['SigningCertURL']=cert
for name,m in [("notification_v1",n1),("notification_v2",n2),("confirmation_v1",c)]:
    open(name+'.json','w').write(json.dumps(m, indent=2))
